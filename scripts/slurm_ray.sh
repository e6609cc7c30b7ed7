#!/usr/bin/env bash
# A Ray cluster over the nodes of one SLURM allocation, then one embedprobe command on it.
#
#   sbatch scripts/slurm_ray.sh bench benchmarks/configs/paper_fig2_fig3.toml --gpus-per-extract 1
#   sbatch --nodes 4 scripts/slurm_ray.sh bench CONFIG.toml
#
# The arguments are an embedprobe command and its options; `--engine ray --address HEAD:PORT`
# is added. The batch script runs on the first node: it starts Ray's head there, one Ray worker
# node on every other node (each with the CPUs and GPUs SLURM gave it), waits for them, runs the
# command as the driver; when it returns, the job ends and SLURM stops the Ray steps. Re-submit the same command to resume a bench (finished
# jobs are skipped). See README.md, "Running on a cluster": the bench's out/cache folders and the
# corpora must be on a filesystem every node mounts at the same path.
#
# Adapt the #SBATCH lines (partition, account, GPUs) to your site, and activate the environment
# that has `pip install 'embedprobe[ray]'` (the same on every node) before `sbatch`, or below.
#SBATCH --job-name=embedprobe-ray
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --gpus-per-node=1
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
if [ "$#" -lt 1 ]; then
  echo "usage: sbatch scripts/slurm_ray.sh bench CONFIG.toml [options]" >&2
  exit 2
fi
PORT=${RAY_PORT:-6379}
CPUS=${SLURM_CPUS_PER_TASK:-1}
GPUS=${SLURM_GPUS_ON_NODE:-0}

mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head_node=${nodes[0]}
head_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address | awk '{print $1}')
address="$head_ip:$PORT"

# --block keeps each `ray start` in the foreground of its job step; the steps end with the job
srun --nodes=1 --ntasks=1 -w "$head_node" \
  ray start --head --node-ip-address="$head_ip" --port="$PORT" --num-cpus="$CPUS" --num-gpus="$GPUS" \
  --include-dashboard=false --block &
until ray status --address "$address" >/dev/null 2>&1; do sleep 2; done
for node in "${nodes[@]:1}"; do
  srun --nodes=1 --ntasks=1 -w "$node" \
    ray start --address="$address" --num-cpus="$CPUS" --num-gpus="$GPUS" --block &
done
# wait (at most 5 minutes) until every node has joined; tasks start on the nodes already there
python - "$address" "${#nodes[@]}" <<'PY'
import sys, time
import ray

ray.init(address=sys.argv[1], logging_level="error", log_to_driver=False)
deadline = time.time() + 300
while sum(n["Alive"] for n in ray.nodes()) < int(sys.argv[2]) and time.time() < deadline:
    time.sleep(2)
print(f"Ray cluster at {sys.argv[1]}: {sum(n['Alive'] for n in ray.nodes())} of {sys.argv[2]} nodes")
PY

embedprobe "$@" --engine ray --address "$address"
