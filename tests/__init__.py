# The stages package pins numpy's CPU code paths when imported, which must happen before
# numpy loads: importing it here, first, makes in-process tests compute what stages do.
import stages  # noqa: F401
