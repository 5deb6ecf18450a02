"""共享交换 — share requests between departments, answered on a legal clock.

A department files a request (``exchange.requests.file_request``) for a conditional
resource; the owner answers (approve / approve in part / refuse with a reason) within
the working days of the active ``answer_rule`` (``exchange.clock``); an approval makes the
grant (``layers.grants``) that ``layers.policy.decide`` reads. Overdue requests escalate
to the bureau (``check_deadlines``). Who may do what lives in ``layers.policy``.
"""
