# Wrong: never communicates; scales its own vector by the number of ranks instead of summing theirs.
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    x, _seed, world_size = data
    return x * world_size
