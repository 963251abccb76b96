"""Matrices as lists of rows."""


def shape(matrix):
    """(rows, columns)."""
    return len(matrix), len(matrix[0]) if matrix else 0


def transpose(matrix):
    """Rows become columns: a 2x3 matrix gives a 3x2 one."""
    rows, cols = shape(matrix)
    return [[matrix[r][c] for r in range(cols)] for c in range(rows)]


def multiply(a, b):
    """Matrix product a x b."""
    if shape(a)[1] != shape(b)[0]:
        raise ValueError(f"cannot multiply {shape(a)} by {shape(b)}")
    columns = transpose(b)
    return [[sum(x * y for x, y in zip(row, col)) for col in columns] for row in a]
