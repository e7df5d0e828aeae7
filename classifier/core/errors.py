"""The library's error types: problems a user can fix, each shown as one line without a traceback
(classifier.core.startup prints them). Imports nothing."""


class StageError(ValueError):
    """A problem the user can fix (params, data, missing files); shown without a traceback."""


class ParamsError(StageError):
    """A params.yaml problem, phrased for the person who edits params.yaml."""


class RawDataError(StageError):
    """The raw data folder cannot give what params.yaml asks for."""
