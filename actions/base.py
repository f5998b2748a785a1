"""What every bureau action shares: a database session per run and a polite answer on failure."""

from __future__ import annotations

import abc
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bureau.db import get_session_factory, run_transaction

logger = logging.getLogger(__name__)

SYSTEM_ERROR_RESPONSE = "utter_system_error"


class BureauAction(Action, abc.ABC):
    """An action that works on the bureau's database in one unit of work.

    Subclasses implement `name` and `act`; a unit cut by a brief database outage runs again
    (`bureau.db.run_transaction`, so `act` must only touch the database and the dispatcher); any other
    database failure rolls the unit back, is logged, and the user gets a short apology
    (`utter_system_error`) instead of a stack trace.
    Abstract, so rasa-sdk does not register it as an action of its own.
    """

    @abc.abstractmethod
    def name(self) -> str: ...

    @abc.abstractmethod
    def act(
        self, session: Session, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Do the work inside one transaction; return the events."""

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        already_said = len(dispatcher.messages)

        def forget_attempt() -> None:  # a retried unit must not say its answer twice
            del dispatcher.messages[already_said:]

        try:
            return run_transaction(
                get_session_factory(),
                lambda session: self.act(session, dispatcher, tracker, domain),
                what=self.name(),
                on_retry=forget_attempt,
            )
        except SQLAlchemyError:
            logger.exception("database error in %s", self.name())
            # Whatever the action said before failing describes work that was rolled back.
            del dispatcher.messages[already_said:]
            dispatcher.utter_message(response=SYSTEM_ERROR_RESPONSE)
            return []
