"""How the Ray runner uses the cluster: the options of `restore --ray` and `batch`."""

from __future__ import annotations

from dataclasses import dataclass

from videofix.errors import UsageError


@dataclass
class RayOptions:
    """How the Ray runner uses the cluster.

    address: None = start an embedded local Ray sized to the machine (stopped at the end);
        "auto" or "ray://host:port" (or host:port) = join that cluster.
    token_file: with `address`: a file holding the cluster's authentication token (else
        $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token; see `videofix.pipeline.ray.auth`).
        The embedded cluster makes its own token.
    segments / segment_seconds: how each video is cut (default: 2 segments per CPU).
    restorers: restorer actors (default: one per GPU, else one CPU actor).
    chunk: crops sent to the actor per call (more = fewer round trips, more frames held).
    max_retries: times a task is re-run after a worker crash (bad input is never retried).
    """

    address: str | None = None
    segments: int | None = None
    segment_seconds: float | None = None
    restorers: int | None = None
    chunk: int = 16
    max_retries: int = 2
    token_file: str | None = None

    def validate(self) -> None:
        if self.segments is not None and self.segments < 1:
            raise UsageError(f"--segments must be >= 1, got {self.segments}")
        if self.segment_seconds is not None and self.segment_seconds <= 0:
            raise UsageError(f"--segment-seconds must be > 0, got {self.segment_seconds}")
        if self.segments is not None and self.segment_seconds is not None:
            raise UsageError("give --segments or --segment-seconds, not both")
        if self.restorers is not None and self.restorers < 1:
            raise UsageError(f"--restorers must be >= 1, got {self.restorers}")
        if self.chunk < 1:
            raise UsageError(f"chunk must be >= 1, got {self.chunk}")
        if self.token_file and not self.address:
            raise UsageError("--ray-token-file is for a cluster joined with --address "
                             "(the embedded cluster makes a token of its own)")
