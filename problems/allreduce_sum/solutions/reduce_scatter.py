# Correct another way: each rank reduces its own shard (reduce-scatter), then the shards are gathered.
import torch
import torch.distributed as dist
from task import input_t, output_t


def custom_kernel(data: input_t) -> output_t:
    x, _seed, world_size = data
    shard = -(-x.numel() // world_size)
    padded = torch.zeros(shard * world_size, dtype=x.dtype, device=x.device)
    padded[: x.numel()] = x
    mine = torch.empty(shard, dtype=x.dtype, device=x.device)
    dist.reduce_scatter(mine, list(padded.chunk(world_size)), op=dist.ReduceOp.SUM)
    gathered = [torch.empty_like(mine) for _ in range(world_size)]
    dist.all_gather(gathered, mine)
    return torch.cat(gathered)[: x.numel()]
