// The trainer's mechanics on a tiny setting: crash and resume (bit-identical weights and log), the last
// good checkpoint kept on NaN, bad batches named with their position, early stopping, the best
// checkpoint, the JSON log, strategy selection by name, and the learning-rate schedules.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "mammocl/data/loader.hpp"
#include "mammocl/data/synthetic_domains.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/train/trainer.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using B = cpu_backend;
using model_t = models::densenet<B, models::densenet_small>;
using task = data::synthetic_domain_task;

namespace {

task::options train_opts() {
  return {.patches = {.size = 24, .seed = 5}, .count = 40, .kind = task::variant::mixed, .batch_size = 8};
}
task::options val_opts() {
  return {.patches = {.size = 24, .seed = 5}, .first = 50000, .count = 20, .kind = task::variant::both_versions,
          .batch_size = 20, .shuffle = false, .augment = false, .drop_last = false};
}

train::strategy_options small_strategy() {
  train::strategy_options so;
  so.stage1 = {.epochs = 2, .lr = 0.05};
  so.stage2 = train::finetune_defaults(2);
  so.projector_out = 16;
  so.dann_hidden = 16;
  return so;
}

/// Every parameter and buffer value of a state-dict module, in visiting order.
template <class M>
std::vector<float> all_state(M& m) {
  std::vector<float> out;
  io::for_each_state(m, [&]<class V>(const std::string&, V& v) {
    if constexpr (std::is_same_v<V, tensor<B>>) {
      std::vector<float> h(static_cast<std::size_t>(v.numel()));
      B::to_host(v, h.data());
      out.insert(out.end(), h.begin(), h.end());
    } else {
      out.push_back(static_cast<float>(v));
    }
  });
  return out;
}

/// The log without the wall-clock fields.
std::vector<nlohmann::json> timeless(std::vector<nlohmann::json> log) {
  for (auto& j : log) {
    j.erase("seconds");
    j.erase("images_per_second");
  }
  return log;
}

struct simulated_crash {};

/// A source that wraps the synthetic task and corrupts one batch.
struct faulty_source {
  task inner;
  int bad_epoch = -1;
  std::int64_t bad_step = -1;
  enum class fault { nan_pixels, bad_label, one_view } kind = fault::nan_pixels;
  [[nodiscard]] std::int64_t batches_per_epoch() const { return inner.batches_per_epoch(); }
  [[nodiscard]] data::batch get_batch(const data::batch_request& r) const {
    data::batch b = inner.get_batch(kind == fault::one_view ? data::batch_request{r.stage, r.epoch, r.index, 1} : r);
    if (r.epoch == bad_epoch && r.index == bad_step) {
      if (kind == fault::nan_pixels) b.images[3] = std::numeric_limits<float>::quiet_NaN();
      if (kind == fault::bad_label) b.labels[2] = 7;
    }
    return b;
  }
};

template <class S>
train::fit_result run(B::context& ctx, model_t& model, const std::filesystem::path& dir, train::trainer_options opt,
                      const train::strategy_options& so = small_strategy()) {
  task tr(train_opts()), va(val_opts());
  S s(model, so);
  opt.out_dir = dir;
  opt.progress = false;
  return train::fit(ctx, s, tr, &va, opt, 5);
}

model_t fresh_model() {
  model_t m({.in_channels = 1, .num_classes = 5});
  m.init(11);
  return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(trainer)

BOOST_AUTO_TEST_CASE(resume_after_a_crash_gives_the_same_weights_and_log) {
  using S = train::strategies::supcon_finetune<model_t>;
  B::context ctx(2);
  test::temp_dir dir("trainer-resume");
  model_t reference = fresh_model();
  const auto ref = run<S>(ctx, reference, dir / "reference", {.checkpoint_every = 2, .restore_best = false});
  BOOST_TEST(ref.steps == 4 * 5);  // 2 + 2 epochs of 5 batches
  BOOST_TEST(ref.log.size() == 4u);
  const std::vector<float> want = all_state(reference);

  // Crash points: mid-epoch right after a mid-epoch checkpoint, mid-epoch before any in that epoch, at an
  // epoch's last step, in stage 2, and twice in one run.
  for (const std::vector<std::int64_t>& crashes :
       {std::vector<std::int64_t>{4}, {6}, {5}, {10}, {13}, {3, 17}}) {
    const auto out = dir / ("crash" + std::to_string(crashes.front()) + "_" + std::to_string(crashes.size()));
    train::fit_result r;
    for (std::size_t attempt = 0; attempt <= crashes.size(); ++attempt) {
      model_t m = fresh_model();
      train::trainer_options opt{.checkpoint_every = 2, .restore_best = false};
      if (attempt < crashes.size())
        opt.on_step = [&, at = crashes[attempt]](const train::step_event& e) {
          if (e.global_step == at) throw simulated_crash{};
        };
      try {
        r = run<S>(ctx, m, out, opt);
      } catch (const simulated_crash&) {
        BOOST_TEST_REQUIRE(attempt < crashes.size());
        continue;
      }
      BOOST_TEST(attempt == crashes.size());
      BOOST_TEST(r.resumed);
      BOOST_TEST(r.steps == ref.steps);
      const std::vector<float> got = all_state(m);
      BOOST_TEST_REQUIRE(got.size() == want.size());
      std::size_t differing = 0;
      for (std::size_t i = 0; i < got.size(); ++i) differing += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
      BOOST_TEST(differing == 0u, "crash at step " << crashes.front() << ": " << differing << " of " << got.size()
                                                   << " values differ from the uninterrupted run");
      BOOST_TEST(timeless(r.log) == timeless(ref.log));
    }
  }
}

BOOST_AUTO_TEST_CASE(nan_loss_stops_and_keeps_the_last_good_checkpoint) {
  using S = train::strategies::ce<model_t>;
  B::context ctx(2);
  test::temp_dir dir("trainer-nan");
  model_t model = fresh_model();
  faulty_source tr{task(train_opts()), 1, 2, faulty_source::fault::nan_pixels};
  task va(val_opts());
  S s(model, small_strategy());
  std::vector<float> after_epoch1;
  train::trainer_options opt{.out_dir = dir.path, .progress = false};
  opt.on_step = [&](const train::step_event& e) {
    if (e.epoch == 0 && e.step + 1 == tr.batches_per_epoch()) after_epoch1 = all_state(model);
  };
  test::expect_error<numeric_error>([&] { (void)train::fit(ctx, s, tr, &va, opt, 5); },
                                    "trainer: ce stage 'ce' (1/1), epoch 2, step 3: the batch holds a non-finite pixel (nan) in image 0");
  // NaN that a later layer would hide (ReLU and max pooling drop it) is caught at the gradient, before
  // the weights change: here through the strategy directly, with a finite input and a NaN weight.
  {
    model_t m = fresh_model();
    S direct(m, small_strategy());
    direct.begin_stage(0);
    task t(train_opts());
    const data::batch b = t.get_batch({0, 0, 0, 1});
    bool poisoned = false;
    m.for_each_parameter([&](const std::string& name, parameter<B>& p) {
      if (!poisoned && name.find("norm0.weight") != std::string::npos) {
        p.value.data()[0] = std::numeric_limits<float>::quiet_NaN();
        poisoned = true;
      }
    });
    BOOST_TEST_REQUIRE(poisoned);
    test::expect_error<numeric_error>(
        [&] { (void)direct.train_step(ctx, b, {0, 0, 0, 0, 10, 0.01}); }, "holds NaN or Inf");
  }
  // The checkpoint is the state at the end of epoch 1, finite, and it loads.
  const auto f = io::safetensors::file::read(dir / "last.safetensors");
  const auto st = nlohmann::json::parse(f.metadata().at("mammocl.trainer"));
  BOOST_TEST(st.at("epoch").get<int>() == 1);
  BOOST_TEST(st.at("step").get<int>() == 0);
  model_t reloaded = fresh_model();
  S s2(reloaded, small_strategy());
  s2.begin_stage(0);
  io::load_state(s2, f);
  BOOST_TEST(all_state(reloaded) == after_epoch1);
  // And the log holds exactly the good epoch.
  std::ifstream log(dir / "log.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) ++lines;
  BOOST_TEST(lines == 1);
}

BOOST_AUTO_TEST_CASE(bad_batches_are_named_with_their_position) {
  B::context ctx(2);
  test::temp_dir dir("trainer-bad");
  {
    model_t model = fresh_model();
    faulty_source tr{task(train_opts()), 0, 1, faulty_source::fault::bad_label};
    task va(val_opts());
    train::strategies::ce<model_t> s(model, small_strategy());
    test::expect_error<shape_error>(
        [&] { (void)train::fit(ctx, s, tr, &va, {.out_dir = dir / "label", .progress = false}, 5); },
        "trainer: ce stage 'ce' (1/1), epoch 1, step 2: label 7 of sample 2");
  }
  {
    model_t model = fresh_model();
    faulty_source tr{task(train_opts()), -1, -1, faulty_source::fault::one_view};
    task va(val_opts());
    train::strategies::supcon_linear<model_t> s(model, small_strategy());
    test::expect_error<shape_error>(
        [&] { (void)train::fit(ctx, s, tr, &va, {.out_dir = dir / "views", .progress = false}, 5); },
        "trainer: supcon_linear stage 'supcon' (1/2), epoch 1, step 1: the stage needs 2 views per sample but the "
        "source gave 1");
  }
  {  // a checkpoint of another strategy is refused
    model_t model = fresh_model();
    (void)run<train::strategies::ce<model_t>>(ctx, model, dir / "other", {});
    model_t m2 = fresh_model();
    test::expect_error<config_error>([&] { (void)run<train::strategies::mmd<model_t>>(ctx, m2, dir / "other", {}); },
                                     "was written by strategy 'ce', not 'mmd'");
  }
}

BOOST_AUTO_TEST_CASE(early_stopping_best_checkpoint_and_log_file) {
  B::context ctx(2);
  test::temp_dir dir("trainer-early");
  // An improvement must exceed min_delta = 1, which no AUC can after the first epoch.
  train::strategy_options so = small_strategy();
  so.stage1.epochs = 5;
  model_t model = fresh_model();
  const auto r = run<train::strategies::ce<model_t>>(ctx, model, dir.path, {.patience = 2, .min_delta = 1.0,
                                                                           .restore_best = false}, so);
  BOOST_TEST(r.log.size() == 3u);
  BOOST_TEST(r.stopped_early == std::vector<int>{0});
  BOOST_TEST(r.best_epoch == 0);
  BOOST_TEST(r.log[0].at("best").get<bool>());
  BOOST_TEST(!r.log[1].at("best").get<bool>());
  BOOST_TEST(!r.log[2].at("best").get<bool>());
  BOOST_TEST(r.log[0].contains("val_auc_domain0"));
  BOOST_TEST(r.log[0].contains("val_auc_domain1"));
  // log.jsonl holds the same lines.
  std::ifstream in(dir / "log.jsonl");
  std::string line;
  std::size_t i = 0;
  for (; std::getline(in, line); ++i) {
    BOOST_TEST_REQUIRE(i < r.log.size());
    BOOST_TEST(nlohmann::json::parse(line) == r.log[i]);
  }
  BOOST_TEST(i == r.log.size());
  // best.safetensors is the model alone and loads into a plain model.
  model_t best = fresh_model();
  const auto rep = io::load_state(best, dir / "best.safetensors");
  BOOST_TEST(rep.metadata.at("strategy") == "ce");
  BOOST_TEST(rep.metadata.at("epoch") == "1");
  BOOST_TEST(all_state(best) != all_state(model));  // restore_best = false: the model is the last epoch's
}

BOOST_AUTO_TEST_CASE(restore_best_loads_the_best_epoch) {
  B::context ctx(2);
  test::temp_dir dir("trainer-best");
  model_t model = fresh_model();
  const auto r = run<train::strategies::ce<model_t>>(ctx, model, dir.path, {.restore_best = true});
  BOOST_TEST_REQUIRE(r.best_epoch >= 0);
  model_t best = fresh_model();
  io::load_state(best, r.best_checkpoint);
  BOOST_TEST(all_state(best) == all_state(model));
  // The best metric is the largest validation AUC of the log.
  double mx = -1;
  for (const auto& j : r.log) mx = std::max(mx, j.at("val_auc").get<double>());
  BOOST_TEST(r.best_metric == mx);
}

// trainer_options::extend_finished_stage: a 1-epoch run resumed with 2 epochs goes on only when asked,
// and then equals an uninterrupted 2-epoch run bit for bit (constant schedule: the rate does not depend on
// the stage's length).
BOOST_AUTO_TEST_CASE(a_finished_stage_is_extended_only_when_asked) {
  using ce = train::strategies::ce<model_t>;
  B::context ctx(2);
  test::temp_dir dir("trainer-extend"), ref_dir("trainer-extend-ref");
  train::strategy_options so = small_strategy();
  so.stage1 = {.epochs = 1, .lr = 0.05, .schedule = train::schedule_kind::constant};
  model_t first = fresh_model();
  const auto r1 = run<ce>(ctx, first, dir.path, {.restore_best = false}, so);
  BOOST_TEST(r1.log.size() == 1u);
  so.stage1.epochs = 2;
  model_t kept = fresh_model();
  const auto r2 = run<ce>(ctx, kept, dir.path, {.restore_best = false}, so);
  BOOST_TEST(r2.resumed);
  BOOST_TEST(r2.log.size() == 1u);  // finished stays finished
  BOOST_TEST(all_state(kept) == all_state(first));
  model_t extended = fresh_model();
  const auto r3 = run<ce>(ctx, extended, dir.path, {.restore_best = false, .extend_finished_stage = true}, so);
  BOOST_TEST(r3.resumed);
  BOOST_TEST(r3.log.size() == 2u);
  model_t ref = fresh_model();
  const auto rr = run<ce>(ctx, ref, ref_dir.path, {.restore_best = false}, so);
  BOOST_TEST(all_state(extended) == all_state(ref));
  BOOST_TEST(timeless(r3.log) == timeless(rr.log));
  BOOST_TEST(r3.steps == rr.steps);
}

// The trainer fed by the prefetching loader (data::loader_source): worker threads change nothing in the
// result, and a crash in the middle of an epoch resumes to the same weights through the loader too.
BOOST_AUTO_TEST_CASE(trains_from_the_prefetching_loader) {
  using S = train::strategies::supcon_finetune<model_t>;
  auto dataset = [] {
    return data::function_dataset(40, [](std::size_t i, rng& r) {
      const data::synthetic_patches gen({.size = 24, .seed = 9});
      data::sample s;
      s.img = data::image(24, 24);
      s.label = gen.generate(static_cast<std::int64_t>(i), s.img.pixels.data());
      s.domain = static_cast<int>(i % 2);
      if (s.domain == 1) data::apply_sigmoid_domain(s.img.pixels.data(), 24);
      if (r.below(2) == 1)
        for (int y = 0; y < 24; ++y) std::reverse(s.img.pixels.begin() + y * 24, s.img.pixels.begin() + (y + 1) * 24);
      s.id = static_cast<std::int64_t>(i);
      return s;
    });
  };
  B::context ctx(2);
  test::temp_dir dir("trainer-loader");
  task va(val_opts());
  std::vector<std::vector<float>> finals;
  for (int workers : {0, 2}) {
    for (const std::int64_t crash_at : {std::int64_t{-1}, std::int64_t{7}}) {
      if (workers == 0 && crash_at >= 0) continue;
      const auto out = dir / ("w" + std::to_string(workers) + "_" + std::to_string(crash_at));
      for (int attempt = 0; attempt < 2; ++attempt) {
        model_t m = fresh_model();
        S s(m, small_strategy());
        data::loader_source tr(dataset(), {.batch_size = 8, .drop_last = true, .workers = workers, .seed = 3});
        train::trainer_options opt{.out_dir = out, .checkpoint_every = 2, .restore_best = false, .progress = false};
        if (attempt == 0 && crash_at >= 0)
          opt.on_step = [&](const train::step_event& e) {
            if (e.global_step == crash_at) throw simulated_crash{};
          };
        try {
          const auto r = train::fit(ctx, s, tr, &va, opt, 5);
          BOOST_TEST(r.steps == 4 * 5);
          finals.push_back(all_state(m));
          break;
        } catch (const simulated_crash&) {
          BOOST_TEST_REQUIRE(attempt == 0);
        }
      }
    }
  }
  BOOST_TEST_REQUIRE(finals.size() == 3u);
  BOOST_TEST((finals[0] == finals[1]), "2 workers give other weights than none");
  BOOST_TEST((finals[0] == finals[2]), "resuming through the loader gives other weights");
}

BOOST_AUTO_TEST_CASE(strategies_by_name) {
  std::vector<std::string> seen;
  for (std::string_view n : train::strategy_names)
    seen.push_back(train::with_strategy<model_t>(n, []<class S>() { return std::string(S::name); }));
  BOOST_TEST(seen == (std::vector<std::string>{"ce", "supcon_linear", "supcon_finetune", "dann", "mmd"}));
  test::expect_error<config_error>([] { (void)train::with_strategy<model_t>("simclr", []<class S>() { return 0; }); },
                                   "unknown strategy 'simclr'; expected one of ce, supcon_linear, supcon_finetune, "
                                   "dann, mmd");
  model_t m({.in_channels = 1, .num_classes = 3});
  test::expect_error<config_error>([&] { train::strategies::ce<model_t> s(m, small_strategy()); },
                                   "the model's head has 3 outputs but strategy_options::num_classes is 5");
}

BOOST_AUTO_TEST_CASE(learning_rate_schedules) {
  const train::stage_options cosine{.epochs = 4, .lr = 0.2, .schedule = train::schedule_kind::cosine};
  BOOST_TEST(train::stage_lr(cosine, 0, 10) == 0.2);
  BOOST_TEST(train::stage_lr(cosine, 20, 10) == 0.2 * 1e-3 + (0.2 - 0.2 * 1e-3) * 0.5, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(train::stage_lr(cosine, 40, 10) == 0.2 * 1e-3, boost::test_tools::tolerance(1e-12));
  const train::stage_options steps{.epochs = 100, .lr = 0.1, .schedule = train::schedule_kind::multistep,
                                   .milestones = {60, 75, 90}, .gamma = 0.2};
  BOOST_TEST(train::stage_lr(steps, 59 * 7 + 6, 7) == 0.1);
  BOOST_TEST(train::stage_lr(steps, 60 * 7, 7) == 0.1 * 0.2, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(train::stage_lr(steps, 95 * 7, 7) == 0.1 * 0.2 * 0.2 * 0.2, boost::test_tools::tolerance(1e-12));
  const train::stage_options flat{.lr = 0.3, .schedule = train::schedule_kind::constant};
  BOOST_TEST(train::stage_lr(flat, 12345, 7) == 0.3);
}

BOOST_AUTO_TEST_SUITE_END()
