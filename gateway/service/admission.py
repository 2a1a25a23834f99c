"""What a submission must be before anything of it is stored, queued or run, however it was made (a front
end's upload has passed gateway/service/intake.py already; a request built in code, by a test, a benchmark or
the site probes, has not): names and code the store can keep verbatim, the one authority check of a submission
(naming a site, or running on the gateway's own machine, is an admin's), and the source against its task."""

from __future__ import annotations

from gateway.config.tasks import TaskDefinition
from gateway.core.validation import check_account, check_name
from gateway.service.authority import require_admin
from gateway.service.intake import check_code, check_source
from gateway.service.model import LOCAL_GPU_LABEL, SubmitRequest


def check_request(request: SubmitRequest, max_bytes: int, *, database: bool) -> None:
    """Names and code as the store can keep them verbatim, or a UserError saying what is wrong; and
    the one authority check of a submission: naming a site (the local one included) is an admin's."""
    check_account(request.user)
    if request.leaderboard is not None:
        check_name("leaderboard name", request.leaderboard)
    check_code(request.code, request.file_name, max_bytes)
    if request.task is not None:  # before a leaderboard is made of it; else once its board is found
        check_source(request.code, request.file_name, request.task.lang)
    if request.site is not None:
        require_admin(
            request.caller,
            "naming a site is for the gateway's admins: leave the site out, and the gateway routes "
            "the run to a site with the GPU type",
        )
    # no GPU type for a leaderboard means the board's only one (Placement.gpu_type_of), never this machine
    if request.gpu_type == LOCAL_GPU_LABEL or (
        request.on_this_machine and (request.leaderboard is None or not database)
    ):
        require_admin(
            request.caller,
            "runs on the gateway's own machine are for its admins: give a GPU type the leaderboard ranks",
        )


def check_source_for(request: SubmitRequest, task: TaskDefinition) -> None:
    """The code against the task it runs as (the leaderboard's, where the request named none): the
    file name and the syntax of the task's language, so that a file that cannot run is refused with
    its own name and line before anything is stored, queued or counted against a rate limit."""
    if request.task is None or request.task.lang != task.lang:  # else check_request checked it
        check_source(request.code, request.file_name, task.lang)
