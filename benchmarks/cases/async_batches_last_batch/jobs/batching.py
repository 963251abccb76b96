"""Running a worker over batches of items, a few batches at a time."""

import asyncio


def batches(items, size):
    """Split `items` into consecutive lists of at most `size` items."""
    return [items[i:i + size] for i in range(0, len(items) - size, size)]


async def run_batches(items, size, worker, limit=2):
    """Await `worker(batch)` for every batch, at most `limit` at once; results in batch order."""
    semaphore = asyncio.Semaphore(limit)

    async def guarded(batch):
        async with semaphore:
            return await worker(batch)

    return await asyncio.gather(*(guarded(batch) for batch in batches(items, size)))
