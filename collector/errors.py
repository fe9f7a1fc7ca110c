"""One root for every error the tool raises on purpose, in four branches.

The command line catches `UserInputError` once and prints its one line (exit 2);
`DeviceError` names one router and why it failed (exit 1 for that router, the others go
on); `SafetyRefusal` is a rule of the house saying no (a plan, a pre-flight check, a
remediation); `StateStoreError` means the agent's memory cannot be trusted, so it stops
rather than forget an armed router.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Root of every error the tool raises on purpose."""


class UserInputError(CollectorError):
    """A mistake in what the user gave (a file, an option, a host): one line, exit 2."""


class DeviceError(CollectorError):
    """One router could not be reached, logged into, or refused what was sent."""


class SafetyRefusal(CollectorError):
    """A safety rule refused an action: a plan, a pre-flight check, a remediation."""


class StateStoreError(CollectorError):
    """The state store cannot be read or written safely."""
