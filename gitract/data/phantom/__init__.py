"""The embedded synthetic abdominal-MRI phantom: the default, download-free dataset.

A phantom patient has a body outline with subcutaneous fat and a muscle wall, a spine,
aorta and IVC, liver, spleen, kidneys, pancreas, gallbladder (and lungs / bladder /
iliac bones in the organ-free end slices), plus the three labelled organs: a curved,
partly filled stomach with an air-fluid level, small-bowel loops (random-walk tubes with
walls and per-loop lumen contents) and a large-bowel frame with haustra. Organs are 3D
shapes sliced into a stack, so masks change smoothly from slice to slice; each scan
(day) deforms them smoothly, moves the bowel, changes the stomach filling, and adds a
multiplicative bias field and Rician noise at a per-patient 16-bit scale. Intensity
ranges of the labelled organs overlap those of the distractors.

:func:`write_phantom` writes it in the UW-Madison Kaggle layout, so the real loader
(``gitract.data.kaggle.read_kaggle_dataset``) reads it.
"""

from gitract.data.phantom._config import KAGGLE_SIZES, KAGGLE_SPACINGS, PhantomConfig
from gitract.data.phantom._write import (
    PHANTOM_VERSION,
    generate_case_day,
    make_phantom_case,
    phantom_day_numbers,
    write_phantom,
)

__all__ = [
    "KAGGLE_SIZES",
    "KAGGLE_SPACINGS",
    "PHANTOM_VERSION",
    "PhantomConfig",
    "generate_case_day",
    "make_phantom_case",
    "phantom_day_numbers",
    "write_phantom",
]
