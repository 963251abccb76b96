"""Splitting a list of results into pages."""


class Paginator:
    def __init__(self, items, per_page=10):
        if per_page < 1:
            raise ValueError("per_page must be at least 1")
        self.items = list(items)
        self.per_page = per_page

    @property
    def page_count(self):
        """Number of pages; the last page may be partly filled."""
        return len(self.items) // self.per_page

    def page(self, number):
        """The items on page `number` (1-based)."""
        if not 1 <= number <= self.page_count:
            raise IndexError(f"page {number} is out of range 1..{self.page_count}")
        start = (number - 1) * self.per_page
        return self.items[start:start + self.per_page]
