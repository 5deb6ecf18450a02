"""Base libraries (基础库): natural persons by 公民身份号码, legal persons by 统一社会信用代码.

一数一源、多元校核 — each attribute has one authoritative department; every other source's
copy is checked against it (DESIGN §11). A lower package: it imports of the server only
settings, db and errors, like layers/, loaders/ and exchange/ on which it builds.
"""
