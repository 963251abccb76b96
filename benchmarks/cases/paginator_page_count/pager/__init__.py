from .paginate import Paginator

__all__ = ["Paginator"]
