"""sweetspot: find the teacher batch size and epochs whose soft labels distil best.

Importing the package does not import torch; the pipeline lives in its modules:
data -> models -> training -> metrics -> objective -> study -> export -> cli.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
