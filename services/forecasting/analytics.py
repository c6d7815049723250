"""The orders as the behaviour analyses take them, and the population model customer profiles use."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.common.models import ModelHolder
from services.forecasting.core import behaviour
from services.forecasting.core.bundle import ForecastingModel
from services.forecasting.store import ForecastStore


class Analytics:
    """Reads the projection's orders for the behaviour analyses. Before the first training, profiles
    use a population model fitted from every order, kept while no new event arrives."""

    def __init__(self, store: ForecastStore, holder: ModelHolder[ForecastingModel]) -> None:
        self.store = store
        self.holder = holder
        self._fallback: tuple[int, behaviour.BehaviourModel | None] | None = None

    def purchases(self) -> list[behaviour.Purchase]:
        return [behaviour.Purchase(user, datetime.fromtimestamp(t, UTC), total, oid)
                for oid, user, t, total, _ in self.store.orders()]

    def user_purchases(self, user: str) -> list[behaviour.Purchase]:
        return [behaviour.Purchase(user, datetime.fromtimestamp(t, UTC), total, oid)
                for oid, t, total in self.store.user_orders(user)]

    def user_categories(self, user: str) -> tuple[dict[str, int], dict[str, int]]:
        """(purchases, views) of the user per category."""
        by_category = self.store.user_categories(user)
        purchased = {k.split("|", 1)[1]: v for k, v in by_category.items() if k.startswith("purchase|")}
        viewed = {k.split("|", 1)[1]: v for k, v in by_category.items() if k.startswith("view|")}
        return purchased, viewed

    def currency(self) -> str:
        """The currency of the first order that names one ("" without any)."""
        for _oid, _user, _t, _total, currency in self.store.orders():
            if currency:
                return currency
        return ""

    def model(self) -> behaviour.BehaviourModel | None:
        """The trained population model, or one fitted now from every order (kept while no new
        event arrives): profiles work before the first training."""
        model = self.holder.model
        if model is not None and model.behaviour is not None:
            return model.behaviour
        seen = self.store.events_seen()
        cached = self._fallback
        if cached is not None and cached[0] == seen:
            return cached[1]
        purchases = self.purchases()
        try:
            fitted = behaviour.BehaviourModel.fit(purchases, self.store.last_day() or date.today()) if purchases else None
        except ValueError:
            fitted = None
        self._fallback = (seen, fitted)
        return fitted
