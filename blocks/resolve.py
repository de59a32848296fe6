"""One way to turn a flow parameter into a block: the block itself, or the name it was saved as.

Flows take every connection as `str | Block` so that a deployment can name saved blocks
(`source: default`) while a test or a script passes an instance. `resolve_block` is the only
place that decides what such a value means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect.blocks.core import Block

B = TypeVar("B", bound=Block)


def resolve_block(
    value: str | B | None,
    block_type: type[B] | tuple[type[B], ...],
    *,
    default: Callable[[], B] | None = None,
) -> B:
    """The block `value` stands for.

    `value` is one of:

    - an instance of `block_type` (or of one of the types in a tuple): returned as is;
    - `"<block-type-slug>/<name>"`, e.g. `"odoo-invoice-source/prod"`: that saved block, which
      must be of an accepted type;
    - a bare saved name: looked up as each accepted type in turn (the tuple's order), the
      first found wins;
    - `None` or `""`: `default()` when a default is given, else an error.

    Args:
        value: the flow parameter.
        block_type: the block class, or the classes in the order a bare name is looked up.
        default: builds the block to use when `value` is empty.

    Raises:
        TypeError: `value` is neither an accepted block nor a name, or names a block of
            another type.
        ValueError: no block of an accepted type is saved under that name.

    Example:
        >>> from blocks import LedgerDatabase
        >>> resolve_block(LedgerDatabase(), LedgerDatabase).url
        'sqlite:///var/ledger.db'
    """
    types = block_type if isinstance(block_type, tuple) else (block_type,)
    names = " or ".join(t.__name__ for t in types)
    if isinstance(value, types):
        return value
    if value is None or value == "":
        if default is not None:
            return default()
        raise TypeError(f"a {names} block or the name of a saved one is required")
    if not isinstance(value, str):
        raise TypeError(f"expected a {names} block or the name of a saved one, got {value!r}")
    if "/" in value:
        block: Any = Block.load(value)
        if not isinstance(block, types):
            raise TypeError(f"{value} is a {type(block).__name__}, not a {names}")
        return block
    for candidate in types:
        try:
            return candidate.load(value)
        except ValueError:  # Prefect's "unable to find block document named ..."
            if len(types) == 1:
                raise
    slugs = ", ".join(f"{t.get_block_type_slug()}/{value}" for t in types)
    raise ValueError(f"no {names} block is saved as {value!r}; looked for {slugs}")
