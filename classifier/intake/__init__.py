"""Intake: the raw files of `data.raw_dir` (loose, in zips, links refused), the collection they
hold in any of the four layouts, the split, the class list, and decoding into the prepared arrays.

May import: classifier.core.
"""
