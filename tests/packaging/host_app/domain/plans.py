"""The host application's plans: same module name as the kit's `domain/plans.py`, and no `Catalog` in it."""

from __future__ import annotations


def describe(greeting: str, product_ids: list[str]) -> str:
    return f"{greeting}: {len(product_ids)} product(s) on sale: {', '.join(product_ids)}"
