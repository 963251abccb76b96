"""Course marks; None means the assignment was not handed in."""

PASS_MARK = 50


def course_average(marks):
    """Mean over the assignments that were handed in, or None if none were."""
    handed_in = [mark for mark in marks if mark is not None]
    if not marks:
        return None
    return sum(handed_in) / len(handed_in)


def has_passed(marks):
    average = course_average(marks)
    return average is not None and average >= PASS_MARK
