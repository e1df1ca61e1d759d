"""Stand-in for the `service` module that the seed's handler example imports."""

from __future__ import annotations

from typing import Any


class UserService:
    """Records the users it was given, so tests can see the handler ran."""

    def __init__(self) -> None:
        self.users: list[Any] = []

    async def do_smth_with_the_user(self, user: Any) -> None:
        self.users.append(user)


user_service = UserService()


def get_user_service() -> UserService:
    return user_service
