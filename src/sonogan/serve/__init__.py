"""Web apps over a study database: the expert reader study (:mod:`sonogan.serve.app`).

The app imports no training code: it reads and writes the study tables of
:mod:`sonogan.study.db` only. Start it with ``sonogan serve --db URL``.
"""
