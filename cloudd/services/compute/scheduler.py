"""The scheduler: candidates from placement, filters, weighers, claims. (stub)"""


class Scheduler:
    def __init__(self, compute) -> None:
        self.compute = compute
