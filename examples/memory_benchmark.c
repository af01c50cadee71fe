/* The memory benchmark, one cell: PPO with any memory core on any task.
 *
 *   cc -O2 -o memory_benchmark examples/memory_benchmark.c -lm
 *   ./memory_benchmark <env_id> <core_spec> [env_steps] [seed] [options]
 *   ./memory_benchmark RepeatFirstEasy-v0 lstm:128 500000 1
 *   ./memory_benchmark "BattleshipEasy-v0|prev_action_reward" none 200000 2 --csv cell.csv
 *
 * core_spec: every spec mrl_core_config_parse accepts (memrl_mem.h): "none",
 * "lstm:<H>[:<layers>]", "gru:<H>[:<layers>]", "elman:<H>[:<layers>]",
 * "frame_stack:<k>", "gtrxl:<embed>[:<layers>]", ... Options: --csv <file> (a CSV row per
 * iteration), --quiet (no progress lines), --bounds <lo>:<hi> (the return range of a task missing
 * from the table below), --num-envs <n> (16), --num-steps <n> (128, the rollout and BPTT length),
 * --lr <x> (1e-3), --ent-coef <x> (0.01), --norm-adv <0|1> (1),
 * --gamma <x> (0.99), --forget-bias <x> (added at init to the LSTM forget gate's or the GRU update
 * gate's bias; 0),
 * --eval <n> (after training, n greedy episodes on fresh environments: an `eval:` line),
 * --adv-std-floor <x> (PPO's adv_std_floor; 0), --update-epochs <n> (4), --num-minibatches <n>
 * (4), --gae-lambda <x> (0.95), --anneal-lr <0|1> (1), --clip-coef <x> (0.2),
 * --normalize-reward <0|1> (0), --vf-coef <x> (0.5), --curriculum-start <n> (turns PPO's length
 * curriculum on: training starts with the env id's length set to n), --curriculum-growth <x> (2),
 * --curriculum-threshold <x> (0.9), --curriculum-rollout <0|1> (0; 1: the rollout length follows
 * the level, num_steps * length / final length).
 *
 * The agent (the same for every cell of tools/memory_benchmark.sh): 16
 * environments, 128-step rollouts, 4 minibatches, 4 epochs, learning rate
 * 1e-3 annealed, a 64-unit tanh encoder, then the core, shared by actor and
 * critic; CleanRL's other PPO defaults.
 *
 * Prints a progress line per iteration, the `final:` line (mrl_print_final:
 * mean return and success of the last 100 episodes) and a `mmer:` line:
 *   mmer: env=<id> core=<spec> seed=<s> mmer=<0..1> max_mean_return=<r> lo=<lo> hi=<hi>
 *         steps=<n> seconds=<wall time> [episodes=<n> perfect=<n> learned=<0|1>]
 * MMER is POPGym's max-mean episodic return (Morad et al., "POPGym:
 * Benchmarking Partially Observable Reinforcement Learning", ICLR 2023): the
 * maximum over training of the mean episodic return, normalised to [0, 1] by
 * the task's return range, (max_mean - lo) / (hi - lo). POPGym takes the mean
 * over each training batch's episodes; here the mean is over the runner's
 * window of the last 100 episodes, taken at the end of every iteration once
 * that window is full (so a lucky handful of early episodes cannot count),
 * or at the end of training when fewer than 100 episodes ended in all.
 * For MemoryChain (bsuite's memory_len experiment) the line adds the
 * episodes of the whole run and how many were answered right, and whether
 * the setting counts as learned by bsuite's rule (mrl_memory_chain_score of
 * that one setting: accuracy over the run above 62.5%). Where an iteration
 * ends more than 100 episodes (memory_length < 20 at 16 x 128), the right
 * answers of that iteration are estimated from its latest 100 episodes. */
#define MEMRL_IMPLEMENTATION
#include "../memrl_algos.h"
#include <string.h>

/* Return ranges used to normalise MMER. POPGym scales every task's return to
 * [-1, 1] and memrl's POPGym tasks keep its scale. Battleship's worst return
 * lies below -1 (POPGym's scale: -b*b/(b*b-12)); we keep POPGym's [-1, 1] and
 * clamp MMER at 0. CartPole variants pay 1 a step for up to 500 steps (POPGym
 * rescales them to [0, 1]: the same after normalising). */
typedef struct bench_bounds {
  const char *prefix;
  double lo, hi;
} bench_bounds;

static const bench_bounds bench_bounds_table[] = {
    /* POPGym's nine card and game tasks, every difficulty */
    {"RepeatFirst", -1.0, 1.0},
    {"RepeatPrevious", -1.0, 1.0},
    {"Autoencode", -1.0, 1.0},
    {"CountRecall", -1.0, 1.0},
    {"HigherLower", -1.0, 1.0},
    {"Concentration", -1.0, 1.0},
    {"Battleship", -1.0, 1.0},
    {"MineSweeper", -1.0, 1.0},
    {"MultiarmedBandit", -1.0, 1.0},
    /* POPGym's control tasks as Gymnasium's CartPole pays them */
    {"StatelessCartPole-v1", 0.0, 500.0},
    {"NoisyStatelessCartPole-v1", 0.0, 500.0},
    /* Ni et al. 2023: penalty -1/L per step behind (at most -1), +1 in the goal arm */
    {"PassiveTMaze-", -1.0, 1.0},
    /* bsuite: -1 or +1 at the end */
    {"MemoryChain-", -1.0, 1.0},
};

/* The task's return range by id (POPGym's "popgym-" spelling and wrappers
 * after '|' allowed); 0 when the task is not in the table. */
static int bench_lookup_bounds(const char *id, double *lo, double *hi) {
  size_t i;
  if (strncmp(id, "popgym-", 7) == 0) id += 7;
  for (i = 0; i < sizeof bench_bounds_table / sizeof bench_bounds_table[0]; i++) {
    if (strncmp(id, bench_bounds_table[i].prefix, strlen(bench_bounds_table[i].prefix)) == 0) {
      *lo = bench_bounds_table[i].lo;
      *hi = bench_bounds_table[i].hi;
      return 1;
    }
  }
  return 0;
}

typedef struct bench_tracker {
  mrl_ppo *agent;
  int quiet;
  mrl_csv_logger *log;
  double max_mean; /* over full windows */
  int have_max;
  long long seen;   /* episodes accounted for in perfect */
  double perfect;   /* right answers (MemoryChain), estimated where a batch exceeds the window */
  int last_nonfull; /* the latest window, kept for a run that never fills one */
  double last_mean;
} bench_tracker;

static int bench_progress(const mrl_train_progress *p, void *user) {
  bench_tracker *t = (bench_tracker *)user;
  const mrl_episode_stats *s = &t->agent->runner.stats;
  long long fresh = s->total_episodes - t->seen;
  int k, n = fresh < s->count ? (int)fresh : s->count, right = 0;
  if (!t->quiet) mrl_progress_print(p, NULL);
  if (t->log) mrl_csv_logger_write(p, t->log);
  /* the latest n episodes sit just before s->next in the ring */
  for (k = 0; k < n; k++) {
    int slot = (s->next - 1 - k + 2 * MRL_EPISODE_STATS_WINDOW) % MRL_EPISODE_STATS_WINDOW;
    right += s->success[slot] > 0;
  }
  if (n > 0) t->perfect += (double)right * (double)fresh / (double)n;
  t->seen = s->total_episodes;
  if (s->count >= MRL_EPISODE_STATS_WINDOW) {
    double m = mrl_episode_stats_mean_return(s);
    if (!t->have_max || m > t->max_mean) t->max_mean = m;
    t->have_max = 1;
  } else if (s->count > 0) {
    t->last_nonfull = 1;
    t->last_mean = mrl_episode_stats_mean_return(s);
  }
  return 0;
}

static int bench_arg(int argc, char **argv, const char *name, const char **value) {
  int i;
  for (i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) {
      *value = argv[i + 1];
      return 1;
    }
  return 0;
}

int main(int argc, char **argv) {
  const char *id, *spec, *opt, *csv = NULL;
  const char *pos[4] = {NULL, NULL, NULL, NULL};
  long long steps = 200000;
  uint64_t seed = 1;
  int i, npos = 0, num_envs = 16, quiet = 0, eval_episodes = 0;
  double lo = 0.0, hi = 0.0, mmer, seconds;
  char error[MRL_ERROR_SIZE];
  mrl_ppo_config cfg = mrl_ppo_config_default();
  mrl_vecenv env;
  mrl_ppo agent;
  mrl_csv_logger log;
  bench_tracker tracker;
  mrl_result r;
  double t0;
  for (i = 1; i < argc; i++) { /* positional arguments: those not an option or its value */
    if (strcmp(argv[i], "--quiet") == 0) {
      quiet = 1;
    } else if (strncmp(argv[i], "--", 2) == 0) {
      i++;
    } else if (npos < 4) {
      pos[npos++] = argv[i];
    }
  }
  if (npos < 2) {
    fprintf(stderr,
            "usage: %s <env_id> <core_spec> [env_steps] [seed] [--csv file] [--quiet] "
            "[--bounds lo:hi] [--num-envs n] [--num-steps n] [--lr x] [--ent-coef x] [--norm-adv "
            "0|1] [--gamma x] [--forget-bias x] [--eval n] [--adv-std-floor x] [--update-epochs n] "
            "[--num-minibatches n] [--gae-lambda x] [--anneal-lr 0|1] [--clip-coef x] "
            "[--normalize-reward 0|1] [--vf-coef x] [--curriculum-start n] [--curriculum-growth x] "
            "[--curriculum-threshold x] [--curriculum-rollout 0|1]\n",
            argv[0]);
    return 2;
  }
  id = pos[0];
  spec = pos[1];
  if (pos[2]) steps = atoll(pos[2]);
  if (pos[3]) seed = (uint64_t)atoll(pos[3]);
  bench_arg(argc, argv, "--csv", &csv);
  if (bench_arg(argc, argv, "--bounds", &opt)) {
    if (sscanf(opt, "%lf:%lf", &lo, &hi) != 2 || !(hi > lo)) {
      fprintf(stderr, "--bounds wants lo:hi with lo < hi\n");
      return 2;
    }
  } else if (!bench_lookup_bounds(id, &lo, &hi)) {
    fprintf(stderr, "no return range known for %s: give --bounds lo:hi\n", id);
    return 2;
  }
  cfg.seed = seed;
  cfg.learning_rate = 1e-3f;
  cfg.net.encoder_sizes[0] = 64;
  cfg.net.num_encoder_layers = 1;
  cfg.shared_torso = 1;
  if (bench_arg(argc, argv, "--num-envs", &opt)) num_envs = atoi(opt);
  if (bench_arg(argc, argv, "--num-steps", &opt)) cfg.num_steps = atoi(opt);
  if (bench_arg(argc, argv, "--lr", &opt)) cfg.learning_rate = (float)atof(opt);
  if (bench_arg(argc, argv, "--ent-coef", &opt)) cfg.ent_coef = (float)atof(opt);
  if (bench_arg(argc, argv, "--norm-adv", &opt)) cfg.norm_adv = atoi(opt);
  if (bench_arg(argc, argv, "--gamma", &opt)) cfg.gamma = (float)atof(opt);
  if (bench_arg(argc, argv, "--eval", &opt)) eval_episodes = atoi(opt);
  if (bench_arg(argc, argv, "--adv-std-floor", &opt)) cfg.adv_std_floor = (float)atof(opt);
  if (bench_arg(argc, argv, "--update-epochs", &opt)) cfg.update_epochs = atoi(opt);
  if (bench_arg(argc, argv, "--num-minibatches", &opt)) cfg.num_minibatches = atoi(opt);
  if (bench_arg(argc, argv, "--gae-lambda", &opt)) cfg.gae_lambda = (float)atof(opt);
  if (bench_arg(argc, argv, "--anneal-lr", &opt)) cfg.anneal_lr = atoi(opt);
  if (bench_arg(argc, argv, "--clip-coef", &opt)) cfg.clip_coef = (float)atof(opt);
  if (bench_arg(argc, argv, "--normalize-reward", &opt)) cfg.normalize_reward = atoi(opt);
  if (bench_arg(argc, argv, "--vf-coef", &opt)) cfg.vf_coef = (float)atof(opt);
  if (bench_arg(argc, argv, "--curriculum-start", &opt)) {
    cfg.curriculum = 1;
    cfg.curriculum_start = atoi(opt);
  }
  if (bench_arg(argc, argv, "--curriculum-growth", &opt)) cfg.curriculum_growth = (float)atof(opt);
  if (bench_arg(argc, argv, "--curriculum-threshold", &opt))
    cfg.curriculum_threshold = (float)atof(opt);
  if (bench_arg(argc, argv, "--curriculum-rollout", &opt)) cfg.curriculum_rollout = atoi(opt);
  if (mrl_core_config_parse(spec, &cfg.net.core, error, sizeof error) != MRL_OK) {
    fprintf(stderr, "%s\n", error);
    return 2;
  }
  if (bench_arg(argc, argv, "--forget-bias", &opt)) cfg.net.core.forget_bias = (float)atof(opt);
  if ((r = mrl_vecenv_init(&env, id, num_envs, seed)) != MRL_OK) {
    fprintf(stderr, "environment %s: %s\n", id, mrl_result_string(r));
    return 1;
  }
  if ((r = mrl_ppo_init(&agent, &cfg, &env)) != MRL_OK) {
    fprintf(stderr, "agent: %s (%s)\n", mrl_result_string(r), agent.error);
    mrl_vecenv_free(&env);
    return 1;
  }
  memset(&tracker, 0, sizeof tracker);
  tracker.agent = &agent;
  tracker.quiet = quiet;
  if (csv && mrl_csv_logger_open(&log, csv) == MRL_OK) tracker.log = &log;
  t0 = mrl_wall_seconds();
  r = mrl_ppo_train(&agent, &env, steps, bench_progress, &tracker);
  seconds = mrl_wall_seconds() - t0;
  if (r != MRL_OK) fprintf(stderr, "training failed: %s (%s)\n", mrl_result_string(r), agent.error);
  if (tracker.log) mrl_csv_logger_close(&log);
  if (!tracker.have_max) tracker.max_mean = tracker.last_nonfull ? tracker.last_mean : lo;
  mmer = (tracker.max_mean - lo) / (hi - lo);
  mmer = mmer < 0.0 ? 0.0 : mmer > 1.0 ? 1.0 : mmer;
  mrl_print_final(stdout, id, spec, &agent.runner.stats, agent.runner.env_steps, seconds);
  printf("mmer: env=%s core=%s seed=%llu mmer=%.4f max_mean_return=%.4f lo=%g hi=%g steps=%lld "
         "seconds=%.1f",
         id, spec, (unsigned long long)seed, mmer, tracker.max_mean, lo, hi, agent.runner.env_steps,
         seconds);
  if (strncmp(id, "MemoryChain-", 12) == 0) {
    long long episodes = agent.runner.stats.total_episodes;
    long long perfect = (long long)(tracker.perfect + 0.5);
    printf(" episodes=%lld perfect=%lld learned=%d", episodes, perfect,
           mrl_memory_chain_score(&episodes, &perfect, 1) > 0.5f);
  }
  printf("\n");
  if (r == MRL_OK && eval_episodes > 0) { /* the greedy policy on fresh environments */
    mrl_vecenv eval_env;
    mrl_episode_stats es;
    if ((r = mrl_vecenv_init(&eval_env, id, num_envs, seed + 1000003u)) == MRL_OK) {
      r = mrl_ppo_evaluate(&agent, &eval_env, eval_episodes, 1, &es);
      if (r == MRL_OK)
        printf("eval: env=%s core=%s seed=%llu greedy episodes=%d return=%.4f success=%.4f\n", id,
               spec, (unsigned long long)seed, eval_episodes, mrl_episode_stats_mean_return(&es),
               mrl_episode_stats_success_rate(&es));
      mrl_vecenv_free(&eval_env);
    }
  }
  mrl_ppo_free(&agent);
  mrl_vecenv_free(&env);
  return r == MRL_OK ? 0 : 1;
}
