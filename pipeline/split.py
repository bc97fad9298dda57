"""Which digits train and which test: scikit-learn's ``train_test_split``, and only it.

params.yaml's ``split`` section holds ``train_test_split``'s keyword arguments under their
own names; ``stratify: true`` stratifies by the labels. The defaults give the split of the
example as published in 2017, MNIST's own: the first 60,000 rows train, the other 10,000
test. ``train_size: null``, ``test_size: 0.7``, ``shuffle: true``, ``random_state: 0`` give
the gallery's since 2021: 21,000 shuffled rows train, 49,000 test.

- ``SplitParams``: the section, each value checked on its own and the pairs that
  scikit-learn refuses whatever the data (``problems``);
- ``split_rows``: the rows of each set, as ``train_test_split`` orders them (the order of
  the rows decides SGD's bits), found by ``train_test_split`` itself, which also checks
  the sizes against the data with scikit-learn's own rules;
- ``Rows.take``: the rows of an array: a view of the memory-mapped array where the rows
  are one unshuffled run, else a copy (``Rows.copied`` counts it for the memory check).
"""

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field, PlainValidator, StrictBool

from pipeline.errors import UserError
from pipeline.schema import Int, Section


def _size(value: Any) -> int | float | None:
    """A set's size as ``train_test_split`` takes it: rows (an int), a fraction or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number of rows, a fraction or null, not a boolean")
    if isinstance(value, int):
        if value >= 1:
            return value
        raise ValueError("a number of rows is at least 1 (a fraction is a float such as 0.3)")
    if isinstance(value, float):
        if 0 < value < 1:
            return value
        raise ValueError("a fraction is above 0 and below 1 (a number of rows is an integer)")
    raise ValueError("expected a number of rows (an integer), a fraction (a float) or null")


Size = Annotated[int | float | None, PlainValidator(_size)]


class SplitParams(Section):
    """``train_test_split``'s arguments. ``random_state`` is a number, as ``train``'s is,
    so that a shuffled split is the same rows on every run; it is unused unshuffled."""

    train_size: Size
    test_size: Size
    shuffle: StrictBool
    random_state: Annotated[Int, Field(ge=0, le=2**32 - 1)]
    stratify: StrictBool

    def problems(self) -> list[str]:
        """What scikit-learn refuses whatever the data's size, one line each."""
        found = []
        if self.stratify and not self.shuffle:
            found.append(
                "split.stratify = true needs split.shuffle = true: scikit-learn has no"
                " stratified split that keeps the rows' order"
            )
        fractions = [size for size in (self.train_size, self.test_size) if isinstance(size, float)]
        if len(fractions) == 2 and sum(fractions) > 1:
            found.append(
                f"split.train_size + split.test_size = {self.train_size} + {self.test_size}"
                " is more than all the rows: make the two fractions add up to at most 1"
            )
        return found


@dataclass(frozen=True)
class Rows:
    """The rows of each set, as indices into the arrays of fetch_and_scale."""

    train: np.ndarray
    test: np.ndarray

    @staticmethod
    def _run(rows: np.ndarray) -> slice | None:
        """``rows`` as a slice, if they are one ascending run of consecutive rows."""
        if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            return slice(int(rows[0]), int(rows[0]) + len(rows))
        return None

    def take(self, array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The training and the test rows of ``array``: views where each set is one run
        (a memory-mapped array then stays mapped), copies otherwise."""
        return tuple(
            array[run] if (run := self._run(rows)) is not None else array[rows]
            for rows in (self.train, self.test)
        )

    @property
    def copied(self) -> int:
        """How many rows ``take`` copies: those of the sets that are not one run."""
        return sum(len(rows) for rows in (self.train, self.test) if self._run(rows) is None)


def split_rows(params: SplitParams, labels: np.ndarray) -> Rows:
    """The training and test rows of the ``len(labels)`` digits, as ``train_test_split``
    with ``params`` gives them; a ``UserError`` with scikit-learn's reason if it refuses.

    The split is of the row numbers, which gives the same rows in the same order as a
    split of the images themselves (``train_test_split`` draws from the number of rows
    and, stratified, from the labels), without copying a single image.
    """
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(labels))
    try:
        train, test = train_test_split(
            everything,
            train_size=params.train_size,
            test_size=params.test_size,
            shuffle=params.shuffle,
            random_state=params.random_state if params.shuffle else None,
            stratify=labels if params.stratify else None,
        )
    except ValueError as exc:
        sizes = ", ".join(
            f"{key} = {'null' if value is None else value}"
            for key, value in (("train_size", params.train_size), ("test_size", params.test_size))
        )
        raise UserError(
            f"params.yaml's split ({sizes}) cannot split the {len(labels)} digits of"
            f" data/images.npy: scikit-learn's train_test_split says: {exc}"
        ) from None
    return Rows(train=train, test=test)
