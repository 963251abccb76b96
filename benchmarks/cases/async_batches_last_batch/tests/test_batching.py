import asyncio

from jobs import run_batches


async def add_up(batch):
    await asyncio.sleep(0)
    return sum(batch)


def test_results_for_every_batch():
    assert asyncio.run(run_batches(list(range(10)), 3, add_up)) == [3, 12, 21, 9]


def test_no_items():
    assert asyncio.run(run_batches([], 3, add_up)) == []


def test_concurrency_is_limited():
    running = []
    peak = []

    async def worker(batch):
        running.append(batch)
        peak.append(len(running))
        await asyncio.sleep(0.001)
        running.remove(batch)
        return len(batch)

    asyncio.run(run_batches(list(range(9)), 2, worker, limit=2))
    assert max(peak) == 2
