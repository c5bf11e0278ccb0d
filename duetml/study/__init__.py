"""Running a between-subjects user study with duetml, as the paper's: a study folder of
participants and tasks (design), each participant's timed session with questionnaires
(session), blind rating of the final training data (ratings), the analysis (report), a replay
of one session (replay) and an anonymised export (export)."""
