"""The process-wide core every panel shares: settings, the two engines (loaded on first use), the pose cache,
the job runner with its cancel flags, run folders, and the images served as files. One per process."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import NoPersonError, ValidationError
from pipelines.generation.presets import get_preset
from pipelines.generation.request import PoseInput
from pipelines.pose.edits import select_people
from pipelines.pose.keypoints import PoseResult
from pipelines.pose.models import is_stand_in as is_pose_stand_in
from pipelines.settings import Settings
from ui.base import JobRunner, RunFolders
from ui.editor import editor_pose, unsaved_edits
from ui.served import ServedImages
from ui.state import LruCache
from ui.uploads import PreparedPose, content_key, prepare_upload, read_upload

if TYPE_CHECKING:  # the engines (torch, onnxruntime) are imported on first use, after the page is up
    from pipelines.generation import GenerationEngine
    from pipelines.pose import PoseEstimator

NO_UPLOAD = "Upload a photo, a pose JSON file or an OpenPose skeleton image first, or pick a pose preset."
NO_PERSON_CHOSEN = "No person is ticked under People, so there is nothing for the image to follow."


def chosen(people: list[int] | None, count: int) -> list[int]:
    """The ticked people that exist, in order (None, as a raw client may send: everyone)."""
    if people is None:
        return list(range(count))
    return [index for index in people if type(index) is int and 0 <= index < count]


@dataclass(frozen=True)
class CurrentPose:
    """The pose everything uses: the editor's once it is edited, else the upload's; none for a skeleton."""

    prepared: PreparedPose
    pose: PoseResult | None
    edited: bool = False

    @property
    def count(self) -> int:
        return 0 if self.pose is None else len(self.pose.people)

    def chosen(self, people: list[int] | None) -> PoseResult | None:
        """The ticked `people` of the pose (None: everyone); NoPersonError when nobody is ticked."""
        if self.pose is None:
            return None
        ticked = chosen(people, self.count)
        if self.count and not ticked:
            raise NoPersonError(NO_PERSON_CHOSEN)
        return select_people(self.pose, ticked)

    def generation_input(self, people: list[int] | None) -> PoseInput:
        """What generation follows: the ticked people, or the skeleton image as it is."""
        return self.prepared.image if self.pose is None else self.chosen(people)


class PoseStudio:
    """The engines, the pose cache, the runner and the run folders the panels' handlers work over."""

    def __init__(
        self,
        settings: Settings,
        pose_estimator: PoseEstimator | None = None,
        generation_engine: GenerationEngine | None = None,
    ) -> None:
        self.settings = settings
        if pose_estimator is not None:
            self.pose_estimator = pose_estimator
        if generation_engine is not None:
            self.generation_engine = generation_engine
        self.poses: LruCache[PreparedPose] = LruCache(
            settings.pose_cache_mb * 2**20, size_of=lambda prepared: prepared.nbytes
        )
        self.runner = JobRunner()
        self.runs = RunFolders()
        self.served = ServedImages(Path(tempfile.gettempdir()) / "pose-studio-served")  # see ui.served
        self._shown_notices: LruCache[bool] = LruCache(4096)  # (session, notice) already shown

    @cached_property
    def pose_estimator(self) -> PoseEstimator:
        from pipelines.pose import PoseEstimator

        return PoseEstimator.from_settings(self.settings)

    @cached_property
    def generation_engine(self) -> GenerationEngine:
        from pipelines.generation import GenerationEngine

        return GenerationEngine.from_settings(self.settings, pose_estimator=self.pose_estimator)

    @property
    def is_stand_in(self) -> bool:
        """True when either engine runs the tiny random models (the page says so in a banner); read from the
        settings, so building the page loads no engine."""
        return is_pose_stand_in(self.settings) or get_preset(self.settings.preset).is_stand_in

    def prepare(self, upload: str | Path | None) -> PreparedPose:
        """The upload's pose, detected (or parsed) once per distinct file content."""
        if not upload:
            raise ValidationError(NO_UPLOAD)
        data = read_upload(upload)
        return self.poses.get_or_create(
            content_key(data), lambda: prepare_upload(data, self.pose_estimator, self.settings.max_pixels)
        )

    def cached(self, upload: str | Path) -> PreparedPose | None:
        """The upload's pose if it is cached (or being detected, then waited for); never detects."""
        return self.poses.peek(content_key(read_upload(upload)))

    def current(
        self, prepared: PreparedPose, edited: dict | None = None, loaded: dict | None = None
    ) -> CurrentPose:
        """The pose in use for `prepared`: the editor's value when it differs from what was loaded into it
        (checked and clipped like any pose JSON), else the upload's own, untouched."""
        if prepared.pose is None:
            return CurrentPose(prepared, None)
        if edited is not None and loaded is not None and unsaved_edits(edited, loaded, self.settings):
            return CurrentPose(prepared, editor_pose(edited, self.settings).pose, edited=True)
        return CurrentPose(prepared, prepared.pose)

    def new_notices(self, notices: dict[str, str], session: str | None) -> list[str]:
        """Those of the engine's `notices` (what it runs without) not yet shown to `session`."""
        fresh = []
        for notice in notices.values():
            key = f"{session}\n{notice}"
            if self._shown_notices.peek(key) is None:
                self._shown_notices.get_or_create(key, lambda: True)
                fresh.append(notice)
        return fresh
