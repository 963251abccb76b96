"""A per-student report for a class."""

from .marks import course_average, has_passed


def report(students):
    """{name: marks} -> lines like 'ada: 72.5 (pass)', sorted by name."""
    lines = []
    for name in sorted(students):
        marks = students[name]
        average = course_average(marks)
        shown = "-" if average is None else f"{average:.1f}"
        verdict = "pass" if has_passed(marks) else "fail"
        lines.append(f"{name}: {shown} ({verdict})")
    return lines
