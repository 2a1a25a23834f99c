import torch.distributed as dist
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    x, _seed, _world_size = data
    total = x.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total
