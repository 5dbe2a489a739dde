"""Developer machine and `make run`: debug on by default, everything on loopback."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DEBUG", default=True)
