"""A plugin that fails at import time, as a plugin with a missing dependency does."""

import module_that_is_not_installed  # noqa: F401
