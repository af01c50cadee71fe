/* DQN on CartPole-v1: time to reach a mean training return of 475 (the
 * last 100 episodes, checked every 1000 steps), memrl against the PyTorch
 * twin of tools/dqn_torch.py measured in the same run (make bench-dqn):
 *   ./build/bench_dqn [torch_result_file] [seed]
 * Both run CleanRL dqn.py's hyperparameters with its 500k-step schedule and
 * stop at the goal. Prints the figures and BENCH lines (wall and CPU time;
 * speedup > 1: memrl is faster). The machine is shared, so CPU time is the
 * steadier figure. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include <stdlib.h>
#include <time.h>

static int stop_at_goal(const mrl_train_progress *p, void *user) {
  (void)user;
  return p->episodes > 0 && p->mean_return >= 475.0f;
}

int main(int argc, char **argv) {
  uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
  mrl_dqn_config cfg = mrl_dqn_config_default();
  mrl_vecenv env;
  mrl_dqn agent;
  double wall0, wall, cpu;
  clock_t cpu0;
  double t_wall = 0.0, t_cpu = 0.0, t_ret = 0.0;
  long long t_steps = 0;
  int t_reached = 0, reached;
  FILE *f;
  cfg.seed = seed;
  cfg.total_steps = 500000; /* CleanRL's schedule; the run stops at the goal */
  if (mrl_vecenv_init(&env, "CartPole-v1", 1, seed) != MRL_OK) return 1;
  if (mrl_dqn_init(&agent, &cfg, &env) != MRL_OK) {
    fprintf(stderr, "%s\n", agent.error);
    return 1;
  }
  wall0 = mrl_wall_seconds();
  cpu0 = clock();
  if (mrl_dqn_train(&agent, &env, cfg.total_steps, stop_at_goal, NULL) != MRL_OK) {
    fprintf(stderr, "%s\n", agent.error);
    return 1;
  }
  wall = mrl_wall_seconds() - wall0;
  cpu = (double)(clock() - cpu0) / CLOCKS_PER_SEC;
  reached = mrl_episode_stats_mean_return(&agent.runner.stats) >= 475.0f;
  printf("memrl_dqn steps=%lld wall=%.3f cpu=%.3f return=%.2f reached=%d\n", agent.runner.env_steps,
         wall, cpu, mrl_episode_stats_mean_return(&agent.runner.stats), reached);
  f = argc > 1 ? fopen(argv[1], "r") : NULL;
  if (f && fscanf(f, "torch_dqn steps=%lld wall=%lf cpu=%lf return=%lf reached=%d", &t_steps,
                  &t_wall, &t_cpu, &t_ret, &t_reached) == 5) {
    printf("torch_dqn steps=%lld wall=%.3f cpu=%.3f return=%.2f reached=%d\n", t_steps, t_wall,
           t_cpu, t_ret, t_reached);
    printf("BENCH name=dqn_cartpole_to_475_wall value=%.3f unit=s ref=torch_dqn ref_value=%.3f "
           "speedup=%.2f\n",
           wall, t_wall, t_wall / wall);
    printf("BENCH name=dqn_cartpole_to_475_cpu value=%.3f unit=s ref=torch_dqn ref_value=%.3f "
           "speedup=%.2f\n",
           cpu, t_cpu, t_cpu / cpu);
    printf("BENCH name=dqn_cartpole_steps_per_cpu_second value=%.0f unit=steps/s ref=torch_dqn "
           "ref_value=%.0f speedup=%.2f\n",
           agent.runner.env_steps / cpu, t_steps / t_cpu,
           (agent.runner.env_steps / cpu) / (t_steps / t_cpu));
    if (!reached || !t_reached) printf("note: a run stopped before the goal (see reached=)\n");
  } else {
    printf("BENCH name=dqn_cartpole_to_475_wall value=%.3f unit=s ref=none\n", wall);
  }
  if (f) fclose(f);
  mrl_dqn_free(&agent);
  mrl_vecenv_free(&env);
  return 0;
}
