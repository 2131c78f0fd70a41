"""The instructor's command line: ``python -m autograder list | solve | check | grade``.

Exit status: 0 when the command did its job, whatever the students scored; 1 for the grader's own
errors (a missing SUBMISSIONS folder, an unwritable RESULTS, a notebook the grader failed on);
2 for a malformed command line.
"""

import argparse
import fcntl
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath

from autograder import gradebook as gb
from autograder import release, reports, scan, similarity, spec
from autograder.runner import QuestionResult, Report

# A student id is a folder name: no path separators, no leading dot, nothing a shell, a CSV
# reader or a spreadsheet would interpret ("=cmd" cannot start with a letter or digit).
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
RESERVED = re.compile(r"(grades\.csv|gradebook\.sqlite.*)", re.IGNORECASE)


class GraderError(Exception):
    """Something is wrong with the grader's own inputs or outputs (not with a submission)."""


# -- chapters and notebook names -----------------------------------------------------------------


def known_chapters():
    """Every graded chapter, in course order (tests replace this to grade fake chapters)."""
    from autograder.questions import all_chapters

    return all_chapters()


def chapter_folder(chapter):
    """``ch01_descent``: the book folder of a chapter, which also names students' notebooks."""
    return PurePath(chapter.notebook).parent.name


def infer_chapter(path, chapters):
    """A notebook's chapter, from ``chNN_<id>.ipynb`` or ``chNN_<id>/exercises.ipynb``."""
    path = Path(path)
    name = path.parent.name if path.stem == "exercises" else path.stem
    for chapter in chapters:
        if name in (chapter_folder(chapter), chapter.id):
            return chapter
    raise GraderError(
        f"cannot tell which chapter {path} belongs to: name it like "
        f"{', '.join(chapter_folder(c) + '.ipynb' for c in chapters) or 'chNN_<id>.ipynb'}, "
        "or pass --chapter"
    )


def find_chapter(chapter_id, chapters):
    for chapter in chapters:
        if chapter.id == chapter_id:
            return chapter
    raise GraderError(
        f"no graded chapter {chapter_id!r} (known: {', '.join(c.id for c in chapters)})"
    )


def default_grade_fn():
    from autograder.grading import grade_notebook

    return grade_notebook


# -- list, solve, check --------------------------------------------------------------------------


def cmd_list(args):
    chapters = known_chapters()
    width = max((len(c.id) for c in chapters), default=0)
    for chapter in chapters:
        print(f"{chapter.id:<{width}}  {chapter.notebook}  {chapter.points:g}")
    return 0


def cmd_solve(args):
    from autograder.notebook import solve_file

    chapters = known_chapters()
    chapter = (
        find_chapter(args.chapter, chapters)
        if args.chapter
        else infer_chapter(args.notebook, chapters)
    )
    if not Path(args.notebook).is_file():
        raise GraderError(f"no notebook at {args.notebook}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        solve_file(args.notebook, chapter.id, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{out}: {args.notebook} with every exercise filled from solutions.{chapter.id}")
    return 0


def cmd_check(args, grade_fn=None):
    from autograder.check import CheckReport

    chapters = known_chapters()
    chapter = (
        find_chapter(args.chapter, chapters)
        if args.chapter
        else infer_chapter(args.notebook, chapters)
    )
    if not Path(args.notebook).is_file():
        raise GraderError(f"no notebook at {args.notebook}")
    grade_fn = grade_fn or default_grade_fn()
    report = grade_fn(
        args.notebook,
        chapter.id,
        seed=0 if args.seed is None else args.seed,
        hidden=False,
        timeout=args.timeout,
        require_gpu=args.require_gpu,
    )
    off = reports.report_isolation_off(report)
    if off:
        print(f"WARNING: isolation was OFF: the notebook ran without the sandbox [{off}]")
    print(repr(CheckReport(report)))
    for flag in scan.scan_notebook(args.notebook, chapter):
        print(
            f"needs review: cell {flag['cell']} line {flag['line']}: {flag['rule']}: "
            f"{flag['detail']}"
        )
    return 0


# -- finding submissions -------------------------------------------------------------------------


@dataclass
class Job:
    """One (student, chapter) to grade; ``notebook`` is None when the student has none."""

    student: str
    chapter: object
    notebook: Path | None
    problem: str = ""  # why the notebook cannot be graded at all (e.g. a symbolic link)
    hash: str = ""


def find_students(submissions, warn):
    """Student folders in SUBMISSIONS, sorted; hidden entries ignored, odd names skipped."""
    students = []
    for entry in sorted(os.scandir(submissions), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir(follow_symlinks=False):
            if entry.is_symlink():
                warn(f"skipped {entry.name!r}: a symbolic link, not a student folder")
            elif entry.name.endswith(".ipynb"):
                warn(f"skipped {entry.name!r}: notebooks go in one folder per student")
            continue
        if not STUDENT_ID.fullmatch(entry.name) or RESERVED.fullmatch(entry.name):
            warn(
                f"skipped folder {entry.name!r}: not a usable student id "
                "(letters, digits and . _ @ + - only, starting with a letter or digit)"
            )
            continue
        students.append(entry.name)
    return students


def student_notebooks(folder, chapters, warn):
    """{chapter id: notebook path or a problem string} for one student's folder."""
    found = {}
    by_name = {f"{chapter_folder(c)}.ipynb": c for c in chapters}
    by_dir = {chapter_folder(c): c for c in chapters}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        chapter, path = by_name.get(entry.name), Path(entry.path)
        if chapter is None and entry.name in by_dir and entry.is_dir(follow_symlinks=False):
            chapter, path = by_dir[entry.name], Path(entry.path) / "exercises.ipynb"
            if not os.path.lexists(path):
                continue
        if chapter is None:
            if entry.name.endswith(".ipynb"):
                warn(f"{folder.name}/{entry.name}: not a chapter notebook name, not graded")
            continue
        if chapter.id in found:  # both ch01_x.ipynb and ch01_x/exercises.ipynb: the file wins
            warn(
                f"{folder.name}: two notebooks for {chapter.id}; grading "
                f"{chapter_folder(chapter)}.ipynb"
            )
            if path.name == "exercises.ipynb":
                continue
        if path.is_symlink():
            found[chapter.id] = "the notebook is a symbolic link: submit the file itself"
        elif not path.is_file():
            found[chapter.id] = "the notebook is not a regular file"
        else:
            found[chapter.id] = path
    return found


def plan(submissions, chapters, warn):
    """Every (student, chapter) to account for: chapters submitted by anyone, for every student."""
    try:
        students = find_students(submissions, warn)
    except OSError as exc:
        raise GraderError(f"cannot read SUBMISSIONS folder {submissions}: {exc.strerror}") from None
    notebooks = {}
    for student in students:
        try:
            notebooks[student] = student_notebooks(submissions / student, chapters, warn)
        except OSError as exc:
            warn(f"cannot read {student}'s folder ({exc.strerror}): their notebooks are missing")
            notebooks[student] = {}
    used = {cid for nbs in notebooks.values() for cid in nbs}
    graded_chapters = [c for c in chapters if c.id in used]
    jobs = []
    for student in students:
        for chapter in graded_chapters:
            found = notebooks[student].get(chapter.id)
            if isinstance(found, str):
                jobs.append(Job(student, chapter, None, found))
            else:
                jobs.append(Job(student, chapter, found))
    return students, graded_chapters, jobs


# -- grading -------------------------------------------------------------------------------------


def host_has_cuda():
    """Whether this machine has CUDA (then a sandboxed kernel would have run GPU questions)."""
    return gb.host_cuda()


def error_report(chapter, seed, message):
    """Every question of ``chapter`` in error, for a notebook that never reached a kernel.

    GPU questions are "not run" where there is no GPU, as they are for every other student, so
    that ``possible`` is the same for the whole class.
    """
    results = []
    for q in chapter.questions:
        outcome = spec.NOT_RUN_GPU if q.gpu and not host_has_cuda() else spec.ERROR
        results.append(
            QuestionResult(q.id, q.title or q.id, q.points, 0, outcome, message, q.hint, q.gpu, 0)
        )
    report = Report(chapter.id, seed, results, {"kernel": False})
    report.error = message
    return report


def check_output_dir(submissions, out):
    submissions, out = submissions.resolve(), out.resolve()
    if not submissions.is_dir():
        raise GraderError(f"SUBMISSIONS folder {submissions} does not exist")
    if out == submissions or submissions in out.parents:
        raise GraderError(
            f"RESULTS ({out}) is inside SUBMISSIONS ({submissions}): it would be read as a "
            "student's folder; choose a RESULTS folder outside it"
        )
    if out in submissions.parents:
        raise GraderError(f"SUBMISSIONS ({submissions}) is inside RESULTS ({out})")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise GraderError(f"cannot write to RESULTS folder {out}: {exc.strerror}") from None


def lock_results(out):
    """One grading run per RESULTS folder at a time (the lock dies with the process)."""
    handle = open(out / ".lock", "w")  # noqa: SIM115 -- held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise GraderError(f"another grading run is using {out}; wait for it to finish") from None
    return handle


def remove_stale_temporaries(out):
    """Temporary files a killed run left behind (``.<name>.<random>.tmp``; we hold the lock)."""
    for path in [*out.glob(".*.tmp"), *out.glob("*/.*.tmp")]:
        path.unlink(missing_ok=True)


def write_student_files(book, out, student, chapter_ids, require_gpu, order=None):
    """Write one student's results.json and feedback.html from the gradebook; return the records.

    Isolated from every other student: if this student's reports cannot be made (a grader bug;
    every record is cleaned first, so no student data should do it), they get a short valid
    file saying so, the error propagates as ReportError, and the run goes on with the others.
    """
    folder = out / student
    folder.mkdir(exist_ok=True)
    try:
        records = book.records(student, chapter_ids)
        files = {
            "results.json": reports.results_json_text(student, records, require_gpu, order),
            "feedback.html": reports.feedback_html(student, records, require_gpu, order),
        }
    except Exception as exc:  # noqa: BLE001 -- one student's report never stops the class's
        reason = f"{type(exc).__name__}"
        gb.write_atomic(folder / "results.json", reports.fallback_results_json(student, reason))
        gb.write_atomic(folder / "feedback.html", reports.fallback_feedback_html(student, reason))
        raise ReportError(f"{student}: reports not written: {type(exc).__name__}: {exc}") from exc
    for name, text in files.items():
        gb.write_atomic(folder / name, text)
    return records


class ReportError(Exception):
    """One student's files could not be written (the others are)."""


class ClassRun:
    """One grading run's state: the gradebook, the options, and what happened so far."""

    def __init__(self, book, out, *, seed, timeout, require_gpu, stderr):
        self.book, self.out, self.stderr = book, out, stderr
        self.seed, self.require_gpu = seed, require_gpu
        self.options = {
            "seed": seed,
            "hidden": True,
            "timeout": timeout,
            "require_gpu": require_gpu,
        }
        self.chapter_ids = set()
        self.order = None  # chapter ids in course order, for the reports
        self.failures = []  # the grader's own failures (exit status 1)
        self.unwritten = set()  # students whose files could not be written
        self.stored = set()  # (student, chapter) stored in this run: never twice
        self.where = ""  # the executor's line for the summary (e.g. the cluster's workers)
        self.bar = None

    def stale(self, jobs, chapters, force):
        """The jobs to grade: those whose content hash is not already in the gradebook."""
        self.chapter_ids = {c.id for c in chapters}
        self.order = [c.id for c in chapters]
        versions = {c.id: gb.grading_code_version(c.id) for c in chapters}
        todo = []
        for job in jobs:
            settings = {**self.options, "problem": job.problem}
            job.hash = gb.submission_hash(job.notebook, versions[job.chapter.id], settings)
            if force or self.book.hash_of(job.student, job.chapter.id) != job.hash:
                todo.append(job)
        return todo

    def store(self, job, report, seconds, status):
        """Record one (student, chapter) in one transaction, then rewrite that student's files."""
        if (job.student, job.chapter.id) in self.stored:
            return  # a late duplicate (a retried task's first try): the first result stands
        self.stored.add((job.student, job.chapter.id))
        cuda = host_has_cuda()
        self.book.record(
            gb.Record(
                job.student,
                job.chapter.id,
                job.hash,
                status,
                str(job.notebook) if job.notebook else None,
                gb.now_utc(),
                seconds,
                report,
                gb.possible_points(report, self.require_gpu, cuda),
                gb.uncounted_questions(report, self.require_gpu, cuda),
                tuple(getattr(report, "flags", ())),
            )
        )
        self.write_files(job.student)
        self.bar.update()

    def write_files(self, student):
        """One student's files; a failure is reported and the run goes on (exit status 1)."""
        try:
            return write_student_files(
                self.book, self.out, student, self.chapter_ids, self.require_gpu, self.order
            )
        except ReportError as exc:
            if student not in self.unwritten:
                self.unwritten.add(student)
                self.failures.append(str(exc))
                print(f"grader error: {exc}", file=self.stderr)
            return []

    def record_unrunnable(self, jobs):
        """Missing notebooks ("not handed in") and unusable ones (error rows), with no kernel."""
        for job in jobs:
            expected = f"expected {job.student}/{chapter_folder(job.chapter)}.ipynb"
            message = job.problem or f"notebook missing: {expected}"
            status = gb.GRADED if job.problem else gb.MISSING
            self.store(job, error_report(job.chapter, self.seed, message), 0.0, status)

    def grade_in_kernels(self, jobs, executor):
        """Grade ``jobs`` with ``executor`` (autograder/executors.py), storing each when done."""
        with executor:
            try:
                for job, outcome in executor.grade(jobs, self.options):
                    self.take(job, outcome)
            except BaseException:
                # Interrupted: nothing new starts; notebooks being graded are finished and
                # stored (a second Ctrl-C abandons them); what is stored stays.
                busy = executor.stop()
                if busy:
                    print(
                        f"interrupted: finishing the {busy} notebook(s) being graded "
                        "(Ctrl-C again to abandon them)",
                        file=self.stderr,
                    )
                    try:
                        for job, outcome in executor.finishing():
                            self.take(job, outcome)
                    except KeyboardInterrupt:
                        executor.abandon()
                raise
            finally:
                self.where = executor.summary()

    def take(self, job, outcome):
        if outcome.failure and (job.student, job.chapter.id) not in self.stored:
            self.failures.append(outcome.failure)
            print(f"grader error: {outcome.failure}", file=self.stderr)
        status = gb.GRADER_ERROR if outcome.failure else gb.GRADED
        self.store(job, outcome.report, outcome.seconds, status)

    def finish(self, students, chapters, graded, skipped, stdout):
        """Every student's files, grades.csv, the summary; the exit status."""
        by_student = {s: self.write_files(s) for s in students}
        self.book.export_csv(self.out / "grades.csv", students, chapters)
        flagged = self.book.flagged(set(students), self.chapter_ids)
        export_review(self.out / "review.csv", flagged)
        lines = reports.summary_lines(
            by_student,
            chapters,
            graded=graded,
            skipped=skipped,
            out=self.out,
            seed=self.seed,
            flagged=flagged,
            failed=self.unwritten,
        )
        print("\n".join(lines + [self.where] if self.where else lines), file=stdout)
        if not self.failures:
            return 0
        print(
            f"error: the grader failed on {len(self.failures)} notebook(s); their rows say so "
            "and a re-run grades them again:",
            file=self.stderr,
        )
        for failure in self.failures:
            print(f"  {failure}", file=self.stderr)
        return 1


def export_review(path, flagged):
    """``RESULTS/review.csv``: the scan's flags, for the instructor (never for students).

    Columns: student, chapter, cell (1-based), line, rule, detail. Text is the student's code, so
    a cell that a spreadsheet would read as a formula is prefixed with an apostrophe.
    """
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "chapter", "cell", "line", "rule", "detail"])
    for student, chapter, flag in flagged:
        detail = flag["detail"]
        if detail[:1] in ("=", "+", "-", "@", "\t", "\r"):
            detail = "'" + detail
        writer.writerow([student, chapter, flag["cell"], flag["line"], flag["rule"], detail])
    gb.write_atomic(path, buffer.getvalue())


def grade_class(
    submissions,
    out,
    *,
    workers=None,
    timeout=None,
    force=False,
    require_gpu=False,
    seed=None,
    grade_fn=None,
    cluster=None,
    progress=None,
    stdout=None,
    stderr=None,
):
    """Grade every submission in ``submissions`` into ``out``; returns the exit status.

    The pipeline, in order: check the folders and lock RESULTS -> find every (student, chapter)
    -> drop those whose content hash is already graded -> record missing notebooks -> grade the
    rest in sandboxed kernels, each stored the moment it is done -> per-student files, the CSV
    and the summary (all exported from the gradebook, so they agree with it). ``cluster``: a
    Dask scheduler's address or ``local:N`` grades on Dask workers (autograder/cluster.py).
    """
    from tqdm import tqdm

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    submissions, out = Path(submissions), Path(out)
    check_output_dir(submissions, out)
    if grade_fn is None and not cluster:  # real kernels: prove they cannot see the reference
        from autograder.sandbox import ReferenceVisible, Sandbox

        try:
            Sandbox.detect().verify_no_reference()
        except ReferenceVisible as exc:
            raise GraderError(str(exc)) from None

    def warn(message):
        print(f"warning: {message}", file=stderr)

    with lock_results(out), gb.Gradebook(out / "gradebook.sqlite") as book:
        remove_stale_temporaries(out)
        seed = book.seed(seed)
        chapters = known_chapters()
        students, graded_chapters, jobs = plan(submissions, chapters, warn)
        if not students:
            warn(f"no student folders in {submissions}")
        elif not graded_chapters:
            names = ", ".join(chapter_folder(c) + ".ipynb" for c in chapters)
            warn(f"no chapter notebooks found in {submissions} (expected names like {names})")
        run = ClassRun(
            book, out, seed=seed, timeout=timeout, require_gpu=require_gpu, stderr=stderr
        )
        todo = run.stale(jobs, graded_chapters, force)
        disable = None if progress is None else not progress
        with tqdm(
            total=len(todo),
            unit="notebook",
            desc="grading",
            file=stderr,
            disable=disable,
            dynamic_ncols=True,
        ) as run.bar:
            run.record_unrunnable([j for j in todo if j.notebook is None])
            in_kernels = [j for j in todo if j.notebook is not None]
            if in_kernels:
                run.grade_in_kernels(in_kernels, executor(cluster, workers, grade_fn, run))
        return run.finish(students, graded_chapters, len(todo), len(jobs) - len(todo), stdout)


def executor(cluster, workers, grade_fn, run):
    """The threaded executor, or with ``cluster`` the Dask one (Dask imported only then)."""
    grade_fn = grade_fn or default_grade_fn()
    if cluster:
        from autograder.cluster import DaskExecutor

        return DaskExecutor(cluster, grade_fn, run.order, GraderError)
    from autograder.executors import ThreadedExecutor

    return ThreadedExecutor(max(1, workers or os.cpu_count() or 1), grade_fn)


def cmd_grade(args, grade_fn=None):
    if getattr(args, "limit_memory", False) and not args.cluster:
        # The grader's own memory bound (kernel_target.limit_grader_memory), set only by the
        # command line: children inherit RLIMIT_AS, and a test session calling main() must not.
        # The host's CUDA is probed first, since a driver maps much more than it uses.
        from autograder import grading, kernel_target

        grading._host_cuda()
        kernel_target.limit_grader_memory(max(1, args.workers or os.cpu_count() or 1))
    return grade_class(
        args.submissions,
        args.out,
        workers=args.workers,
        timeout=args.timeout,
        force=args.force,
        require_gpu=args.require_gpu,
        seed=args.seed,
        grade_fn=grade_fn,
        cluster=args.cluster,
    )


# -- the parser ----------------------------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Descent's autograder: list chapters, solve notebooks, check or grade them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="one line per exercise notebook: chapter id, path, points")

    p = sub.add_parser("solve", help="fill every exercise of a notebook from the reference")
    p.add_argument("notebook", help="an exercise notebook, e.g. book/ch01_descent/exercises.ipynb")
    p.add_argument("--out", required=True, help="where to write the solved notebook")
    p.add_argument("--chapter", help="chapter id (default: from the notebook's name)")

    def grading_options(p):
        p.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="S",
            help="seconds allowed per cell and per call into the notebook "
            "(default: the sandbox's and each question's limits)",
        )
        p.add_argument(
            "--seed",
            type=int,
            default=None,
            metavar="N",
            help="seed of the random test inputs, recorded in every report (grade: default "
            "the one kept in RESULTS by an earlier run, else a fresh one; check: default 0)",
        )
        p.add_argument(
            "--require-gpu",
            action="store_true",
            help="count GPU questions even where CUDA is absent (they score 0)",
        )

    p = sub.add_parser("check", help="the public checks on one notebook, in the sandbox")
    p.add_argument("notebook")
    p.add_argument("--chapter", help="chapter id (default: from the notebook's name)")
    grading_options(p)

    p = sub.add_parser("grade", help="grade a class: one folder per student in SUBMISSIONS")
    p.add_argument("submissions", type=Path, metavar="SUBMISSIONS")
    p.add_argument("--out", type=Path, required=True, metavar="RESULTS")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="notebooks graded at once (default: the number of cores)",
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="grade on the Dask scheduler at ADDRESS (tcp://host:8786), or on local:N, a local "
        "Dask cluster of N one-thread worker processes",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="grade again submissions already graded with the same content",
    )
    grading_options(p)
    release.add_parser(sub)
    similarity.add_parser(sub)
    return parser


COMMANDS = {"list": cmd_list, "solve": cmd_solve, "check": cmd_check, "grade": cmd_grade}
COMMANDS["release"] = release.main
COMMANDS["similarity"] = similarity.main


def main(argv=None, *, limit_memory=False):
    """Run one command; ``limit_memory`` (``python -m autograder``) bounds the grader's memory."""
    args = build_parser().parse_args(argv)
    args.limit_memory = limit_memory
    try:
        return COMMANDS[args.command](args)
    except GraderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: every notebook graded so far is in the gradebook; run the same "
            "command again to finish",
            file=sys.stderr,
        )
        return 130
