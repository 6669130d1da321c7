"""The library's exception types. The CLI catches `IcmhError`, prints one line and exits 1."""


class IcmhError(Exception):
  """Base of every error the library reports to a user."""


class BitstreamError(IcmhError):
  """A `.icmh` file (or coded layer) is malformed, truncated, corrupted or for another model."""


class ConfigError(IcmhError, ValueError):
  """A config or command-line knob is unknown or inconsistent."""


class CheckpointError(IcmhError):
  """A checkpoint is missing, unreadable or does not match the config."""


class ImageError(IcmhError):
  """An input image cannot be read or has an unsupported mode."""
