"""The process-wide core every panel shares: settings, the two engines (loaded on first use), the pose cache,
the job runner with its cancel flags, run folders, and the images served as files. One per process."""

from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import ValidationError
from pipelines.generation.presets import get_preset
from pipelines.generation.request import PoseInput
from pipelines.pose.edits import select_people
from pipelines.pose.models import is_stand_in as is_pose_stand_in
from pipelines.settings import Settings
from ui.base import JobRunner, RunFolders
from ui.served import ServedImages
from ui.state import LruCache
from ui.uploads import PreparedPose, content_key, prepare_upload, read_upload

if TYPE_CHECKING:  # the engines (torch, onnxruntime) are imported on first use, after the page is up
    from pipelines.generation import GenerationEngine
    from pipelines.pose import PoseEstimator

NO_UPLOAD = "Upload a photo, a pose JSON file or an OpenPose skeleton image first, or pick a pose preset."


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

    @staticmethod
    def pose_input(prepared: PreparedPose, people: list[int] | None = None) -> PoseInput:
        """What generation follows: the chosen `people` of the pose (None: everyone), or a skeleton image."""
        if prepared.pose is None or people is None:
            return prepared.generation_input
        return select_people(prepared.pose, people)

    def new_notices(self, notices: dict[str, str], session: str | None) -> list[str]:
        """Those of the engine's `notices` (what it runs without) not yet shown to `session`."""
        fresh = []
        for notice in notices.values():
            key = f"{session}\n{notice}"
            if self._shown_notices.peek(key) is None:
                self._shown_notices.get_or_create(key, lambda: True)
                fresh.append(notice)
        return fresh
