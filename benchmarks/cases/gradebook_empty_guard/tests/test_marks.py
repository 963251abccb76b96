from gradebook.marks import course_average
from gradebook.report import report


def test_average_ignores_missing():
    assert course_average([80, None, 60]) == 70


def test_average_no_marks():
    assert course_average([]) is None


def test_average_nothing_handed_in():
    assert course_average([None, None]) is None


def test_report():
    students = {"bob": [40, 45], "ada": [70, None, 75]}
    assert report(students) == ["ada: 72.5 (pass)", "bob: 42.5 (fail)"]
