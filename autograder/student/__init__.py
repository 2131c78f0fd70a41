"""What the student release ships of the grader (see ``autograder/release.py``).

``replay.py`` runs a chapter's public cases from the data recorded at release time;
``package_init.py`` becomes the release's ``autograder/__init__.py``. Nothing here imports the
questions or the reference: the release holds neither.
"""
