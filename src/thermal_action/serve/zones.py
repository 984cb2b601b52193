"""Each sensor's room: its furniture as zones (:mod:`thermal_action.data.rooms`).

A sensor's layout is the one set through the API (``PUT /api/sensors/{id}/zones``, kept in the
store), else the layout file's (``serve --rooms``) valid at the sensor's latest frame time, else
none. The hub sends it to the worker that owns the sensor, in the sensor's queue ahead of the
frames it holds for (:mod:`~thermal_action.serve.routing`): with its first frames, whenever it
changes (through the API, or a ``valid_from`` of the file passed by the sensor's clock), after
the sensor moved to another worker and after that worker restarted.
"""

from __future__ import annotations

import logging
from typing import Any

from thermal_action.data.rooms import NO_LAYOUT, RoomLayout, RoomMap, parse_layout
from thermal_action.errors import RoomsError
from thermal_action.serve.store import Store, now_ms

logger = logging.getLogger(__name__)


class SensorRooms:
    """The zones set through the API (read from the store at start) over the layout file's.

    Args:
        store: where zones set through the API are kept.
        rooms: the layout file's layouts (None: no file).
    """

    def __init__(self, store: Store, rooms: RoomMap | None):
        self.store = store
        self.rooms = rooms
        self.api: dict[str, RoomLayout] = {}  # sensor -> zones set through the API
        for sensor_id, row in store.all_zones().items():
            try:
                self.api[sensor_id] = parse_layout(row["layout"], f"{store.path} [sensor_zones {sensor_id}]", "api")
            except RoomsError as e:  # written by an older or hand-edited database: say so, go on
                logger.error("zones of sensor %s not used: %s", sensor_id, e)

    def layout(self, sensor_id: str, last_timestamp: int | None) -> RoomLayout:
        """The sensor's room at its latest frame time (now before any frame)."""
        api = self.api.get(sensor_id)
        if api is not None:
            return api
        if self.rooms is None:
            return NO_LAYOUT
        return self.rooms.layout_for(sensor_id, None, now_ms() if last_timestamp is None else last_timestamp)

    def set(self, sensor_id: str, body: Any) -> None:
        """Checks and stores zones set through the API (``{"zones": [...]}``).

        Raises:
            RoomsError: the layout cannot be used; the message names the zone.
        """
        layout = parse_layout(body, f"zones of sensor {sensor_id}", "api")
        layout = RoomLayout(layout.zones, "api")  # holds from now: a valid_from means nothing here
        self.store.set_zones(sensor_id, layout.to_dict())
        self.api[sensor_id] = layout

    def delete(self, sensor_id: str) -> bool:
        """Forgets the zones set through the API; False when the sensor had none."""
        if not self.store.delete_zones(sensor_id):
            return False
        self.api.pop(sensor_id, None)
        return True

    def view(self, sensor_id: str, layout: RoomLayout) -> dict:
        """The sensor's room as the API shows it: where it comes from and its zones."""
        row = self.store.zones(sensor_id) if layout.source == "api" else None
        return {"sensor_id": sensor_id, "source": layout.source, **layout.to_dict(),
                "updated_at": row["updated_at"] if row else None}
