"""Supervision (监督考核): what the coordinating bureau (市网信统筹局) checks and reports.

The plan makes the bureau responsible for supervising every department's sharing work
and reporting on it (通报): timeliness of updates against each resource's declared cycle,
evaluation (评议) of exchanged data and corrections (纠错), cataloguing completeness and
request handling. This package computes it from what the other packages record — it
writes only its own tables (ratings, corrections, reminders, filed reports):

- :mod:`supervision.periods`   a period (2026-11, 2026Q4, 2026) and its bilingual errors
- :mod:`supervision.freshness` update rules (data: ``update_rule``), deadlines, the
  due / overdue / delinquent ladder, the obligations of a period, overdue lists
- :mod:`supervision.figures`   the figures of a period, each with the rows behind it
- :mod:`supervision.feedback`  ratings of deliveries and correction tickets
- :mod:`supervision.report_pdf`, :mod:`supervision.report_xlsx` the 通报 as PDF and XLSX
- :mod:`supervision.reports`   filing reports; reminders through the notification inbox
- :mod:`supervision.tasks`     the periodic jobs (daily freshness check, monthly report)

Who may see what is ``layers.policy`` (``supervision_scope``, ``may_rate``,
``may_answer_correction``, ``may_file_reports``). Working days are the exchange's clock
(:mod:`exchange.clock`, the official holiday table) — there is no second one.
"""
