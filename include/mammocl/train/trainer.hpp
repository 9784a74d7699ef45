#pragma once
/// `train::fit`: runs any strategy (train/strategies.hpp) on any model and backend, stage after stage:
/// epochs of batches from a `data::BatchSource`, the stage's optimizer and learning-rate schedule, a
/// validation metric after every epoch of a stage that ends in a classifier, early stopping, the best
/// model kept, a JSON line per epoch, a progress bar, and resume after a crash.
///
/// Files in `trainer_options::out_dir`:
///  - `last.safetensors`: everything needed to continue (model, projector or domain classifier,
///    optimizer state, and the trainer's position and counters in the metadata key "mammocl.trainer"),
///    written atomically at the end of every epoch and, with `checkpoint_every`, every that many steps.
///  - `best.safetensors`: the model alone (torchvision names, loadable with io::load_state) at the epoch
///    with the best validation metric so far, with the metric in its metadata.
///  - `log.jsonl`: one JSON object per finished epoch, rewritten atomically after each epoch.
///
/// Determinism and resume: batches come from `source.get_batch({stage, epoch, index, views})`, a pure
/// function of the request, and every backend op is deterministic for a thread count, so a run that is
/// killed (at any step) and restarted with `resume` ends with bit-identical weights, log and checkpoint
/// to a run never interrupted (tested), provided the thread count is the same.
///
/// Validation metric: the one-vs-one macro AUC (Hand & Till, eval/auc.hpp) of the softmax outputs over the
/// whole validation source (both domains pooled, METHOD.md §5.3); also reported: accuracy and the AUC of
/// each domain alone when every class is present in it.
///
/// Bad input stops training with an exception whose message names the strategy, stage, epoch and step:
/// a non-finite loss or weights (numeric_error), labels outside [0, classes) or a batch with the wrong
/// number of views (shape_error). No checkpoint is written after the last good one, so
/// `last.safetensors` still holds the state at the end of the last good epoch (or checkpoint step).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mammocl/data/batch.hpp"
#include "mammocl/eval/auc.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/io/safetensors.hpp"
#include "mammocl/train/progress.hpp"
#include "mammocl/train/strategies.hpp"

namespace mammocl::train {

/// Where the trainer is, reported after every step to `trainer_options::on_step`.
struct step_event {
  std::string_view strategy;
  int stage = 0, epoch = 0;
  std::int64_t step = 0;          ///< within the epoch, 0-based, of the step just done
  std::int64_t global_step = 0;   ///< steps done since the start of training (all stages), 1-based
  double loss = 0, lr = 0;
};

struct trainer_options {
  std::filesystem::path out_dir = "train_out";  ///< checkpoints and log; created if missing
  bool resume = true;               ///< continue from out_dir/last.safetensors when it exists
  int patience = 0;                 ///< stop a validating stage after this many epochs without improvement (0: never)
  double min_delta = 0.0;           ///< an improvement must exceed this
  std::int64_t checkpoint_every = 0;  ///< also write last.safetensors every this many steps (0: epoch ends only)
  bool restore_best = true;         ///< at the end, load the best validated weights into the model
  bool progress = true;             ///< draw a progress bar
  std::FILE* progress_stream = stderr;
  std::function<void(const step_event&)> on_step = {};  ///< called after every step (may throw to stop training)
  /// On resume: a stage the checkpoint marks finished because its epochs ran out continues when the strategy
  /// now gives it more epochs (e.g. a run of 1 epoch resumed with 2); its schedule then spans the new total.
  /// A stage ended by early stopping stays finished. Off: a finished stage is never reopened.
  bool extend_finished_stage = false;
};

/// What `fit` did.
struct fit_result {
  std::vector<nlohmann::json> log;  ///< one object per finished epoch (the content of log.jsonl)
  double best_metric = std::numeric_limits<double>::quiet_NaN();  ///< best validation AUC (NaN: none)
  int best_stage = -1, best_epoch = -1;
  bool resumed = false;             ///< started from an existing last.safetensors
  std::int64_t steps = 0;           ///< optimizer steps taken in total (including before a resume)
  std::vector<int> stopped_early;   ///< stages that early stopping ended
  std::filesystem::path last_checkpoint, best_checkpoint;
};

/// Validation of a strategy's classifier on a source (views = 1, stage/epoch 0 requests).
struct validation_result {
  double auc = std::numeric_limits<double>::quiet_NaN();  ///< OvO macro AUC over all samples and the classes present (eval::ovo_auc_present; NaN with fewer than 2)
  double accuracy = 0;
  std::optional<double> auc_domain[2];                    ///< per domain, when every class is present there
  std::vector<double> probabilities;                      ///< N×K softmax outputs, in source order
  std::vector<int> labels, domains;
  std::vector<std::int64_t> ids;
};

/// Runs the strategy's classifier (inference mode) over every batch of `source` and scores it.
template <class S, data::BatchSource Src>
validation_result validate(typename S::backend_type::context& ctx, const S& strategy, Src& source, int num_classes) {
  using B = typename S::backend_type;
  validation_result v;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(source.batches_per_epoch()); ++i) {
    const data::batch b = source.get_batch({0, 0, i, 1});
    // The (N,K) logits on the host (one small copy per batch on a device backend).
    const auto logits = host_bridge::on_host(strategy.predict(ctx, detail::to_tensor<B>(b)));
    MAMMOCL_EXPECTS(logits.c() == num_classes, "validate: the classifier has ", logits.c(), " outputs, expected ",
                    num_classes);
    for (index_t r = 0; r < logits.n(); ++r) {
      double mx = -INFINITY, sum = 0;
      for (index_t c = 0; c < num_classes; ++c) mx = std::max(mx, static_cast<double>(logits.at(r, c)));
      std::vector<double> p(static_cast<std::size_t>(num_classes));
      for (index_t c = 0; c < num_classes; ++c) sum += p[c] = std::exp(static_cast<double>(logits.at(r, c)) - mx);
      for (double& x : p) x /= sum;
      MAMMOCL_CHECK(std::isfinite(sum), numeric_error, "validate: the logits of validation sample ", v.labels.size(),
                    " are not finite");
      v.probabilities.insert(v.probabilities.end(), p.begin(), p.end());
    }
    v.labels.insert(v.labels.end(), b.labels.begin(), b.labels.end());
    if (b.domains.size() == b.labels.size()) v.domains.insert(v.domains.end(), b.domains.begin(), b.domains.end());
    v.ids.insert(v.ids.end(), b.ids.begin(), b.ids.end());
  }
  const std::size_t n = v.labels.size(), k = static_cast<std::size_t>(num_classes);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double* row = v.probabilities.data() + i * k;
    correct += static_cast<int>(std::max_element(row, row + k) - row) == v.labels[i];
  }
  v.accuracy = n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
  auto all_present = [&](const std::vector<int>& labels) {
    std::vector<int> seen(k, 0);
    for (int y : labels)
      if (y >= 0 && y < num_classes) seen[static_cast<std::size_t>(y)] = 1;
    return std::count(seen.begin(), seen.end(), 1) == static_cast<std::ptrdiff_t>(k);
  };
  // Over the classes present (a small validation split of real data may lack a rare class); with every
  // class present this is the plain OvO macro AUC.
  {
    std::vector<int> seen(k, 0);
    for (int y : v.labels)
      if (y >= 0 && y < num_classes) seen[static_cast<std::size_t>(y)] = 1;
    if (std::count(seen.begin(), seen.end(), 1) >= 2) v.auc = eval::ovo_auc_present(v.probabilities, v.labels, num_classes);
  }
  if (v.domains.size() == n)
    for (int d = 0; d < 2; ++d) {
      std::vector<double> p;
      std::vector<int> y;
      for (std::size_t i = 0; i < n; ++i)
        if (v.domains[i] == d) {
          p.insert(p.end(), v.probabilities.begin() + static_cast<std::ptrdiff_t>(i * k),
                   v.probabilities.begin() + static_cast<std::ptrdiff_t>((i + 1) * k));
          y.push_back(v.labels[i]);
        }
      if (all_present(y)) v.auc_domain[d] = eval::ovo_auc(p, y, num_classes).macro;
    }
  return v;
}

namespace detail {

/// The trainer's position and counters, saved in last.safetensors' metadata.
struct trainer_state {
  int stage = 0, epoch = 0;        ///< current stage; epochs of it finished
  std::int64_t step = 0;           ///< steps of the current epoch done (mid-epoch checkpoints)
  std::int64_t stage_step = 0, global_step = 0;
  bool stage_done = false;         ///< the current stage finished (all epochs or early stop)
  double loss_sum = 0, class_sum = 0, domain_sum = 0;  ///< over the current epoch's steps so far
  std::int64_t correct = 0, counted = 0, seen = 0;
  double best_metric = std::numeric_limits<double>::quiet_NaN();
  int best_stage = -1, best_epoch = -1, bad_epochs = 0;
  std::vector<int> stopped_early;
  std::vector<nlohmann::json> log;

  [[nodiscard]] nlohmann::json to_json(std::string_view strategy) const {
    return {{"strategy", strategy}, {"stage", stage}, {"epoch", epoch}, {"step", step}, {"stage_step", stage_step},
            {"global_step", global_step}, {"stage_done", stage_done}, {"loss_sum", loss_sum},
            {"class_sum", class_sum}, {"domain_sum", domain_sum}, {"correct", correct}, {"counted", counted},
            {"seen", seen}, {"best_metric", std::isnan(best_metric) ? nlohmann::json(nullptr) : nlohmann::json(best_metric)},
            {"best_stage", best_stage}, {"best_epoch", best_epoch}, {"bad_epochs", bad_epochs},
            {"stopped_early", stopped_early}, {"log", log}};
  }
  static trainer_state from_json(const nlohmann::json& j, const std::string& where) {
    trainer_state s;
    try {
      s.stage = j.at("stage");
      s.epoch = j.at("epoch");
      s.step = j.at("step");
      s.stage_step = j.at("stage_step");
      s.global_step = j.at("global_step");
      s.stage_done = j.at("stage_done");
      s.loss_sum = j.at("loss_sum");
      s.class_sum = j.at("class_sum");
      s.domain_sum = j.at("domain_sum");
      s.correct = j.at("correct");
      s.counted = j.at("counted");
      s.seen = j.at("seen");
      s.best_metric = j.at("best_metric").is_null() ? std::numeric_limits<double>::quiet_NaN()
                                                     : j.at("best_metric").get<double>();
      s.best_stage = j.at("best_stage");
      s.best_epoch = j.at("best_epoch");
      s.bad_epochs = j.at("bad_epochs");
      s.stopped_early = j.at("stopped_early").get<std::vector<int>>();
      s.log = j.at("log").get<std::vector<nlohmann::json>>();
    } catch (const nlohmann::json::exception& e) {
      MAMMOCL_THROW(io_error, "trainer: ", where, " has a malformed \"mammocl.trainer\" metadata entry (", e.what(), ")");
    }
    return s;
  }
};

/// Rethrows a library error of the step with the trainer's position in front, keeping its type.
[[noreturn]] inline void rethrow_with(const std::string& where) {
  try {
    throw;
  } catch (const numeric_error& e) {
    throw numeric_error(where + e.message(), e.file(), e.line());
  } catch (const shape_error& e) {
    throw shape_error(where + e.message(), e.file(), e.line());
  } catch (const config_error& e) {
    throw config_error(where + e.message(), e.file(), e.line());
  } catch (const io_error& e) {
    throw io_error(where + e.message(), e.file(), e.line());
  }
}

template <class S>
bool all_parameters_finite(typename S::backend_type::context& ctx, S& s) {
  using B = typename S::backend_type;
  bool ok = true;
  s.for_each_parameter([&](const std::string&, parameter<B>& p) {
    if (ok) ok = B::all_finite(ctx, p.value);
  });
  return ok;
}

inline void write_log(const std::filesystem::path& path, const std::vector<nlohmann::json>& log) {
  std::string text;
  for (const auto& j : log) text += j.dump() + "\n";
  io::safetensors::detail::write_atomically(path, std::as_bytes(std::span(text.data(), text.size())));
}

}  // namespace detail

/// Trains `strategy` on `train` and, when `val` is not null, validates after every epoch of a validating
/// stage. See the file comment for what is written, resumed and reported.
template <Strategy S, data::BatchSource Train, data::BatchSource Val = Train>
fit_result fit(typename S::backend_type::context& ctx, S& strategy, Train& train, Val* val, const trainer_options& opt,
               int num_classes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(opt.out_dir, ec);
  MAMMOCL_CHECK(fs::is_directory(opt.out_dir), io_error, "trainer: cannot create the output directory '",
                opt.out_dir.string(), "'", ec ? " (" + ec.message() + ")" : std::string());
  MAMMOCL_CHECK(opt.patience >= 0 && opt.checkpoint_every >= 0, config_error,
                "trainer: patience (", opt.patience, ") and checkpoint_every (", opt.checkpoint_every, ") must be >= 0");
  const fs::path last = opt.out_dir / "last.safetensors", best = opt.out_dir / "best.safetensors",
                 log_path = opt.out_dir / "log.jsonl";
  const std::string strategy_name(S::name);
  const std::int64_t spe = static_cast<std::int64_t>(train.batches_per_epoch());
  MAMMOCL_CHECK(spe >= 1, config_error, "trainer: the training source has no batch");

  fit_result result;
  result.last_checkpoint = last;
  detail::trainer_state st;

  auto save_last = [&] {
    MAMMOCL_CHECK(detail::all_parameters_finite(ctx, strategy), numeric_error, "trainer: ", strategy_name, " stage ",
                  st.stage + 1, " epoch ", st.epoch + 1, ": the weights hold NaN or Inf; no checkpoint written, the last "
                  "good one is '", last.string(), "'");
    io::save_state(strategy, last, {{"mammocl.trainer", st.to_json(strategy_name).dump()}});
  };

  if (opt.resume && fs::exists(last)) {
    const io::safetensors::file f = io::safetensors::file::read(last);
    const auto it = f.metadata().find("mammocl.trainer");
    MAMMOCL_CHECK(it != f.metadata().end(), io_error, "trainer: '", last.string(),
                  "' has no \"mammocl.trainer\" metadata; it is not a trainer checkpoint");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      MAMMOCL_THROW(io_error, "trainer: '", last.string(), "' has unreadable \"mammocl.trainer\" metadata (", e.what(), ")");
    }
    const std::string saved = j.value("strategy", std::string());
    MAMMOCL_CHECK(saved == strategy_name, config_error, "trainer: '", last.string(), "' was written by strategy '", saved,
                  "', not '", strategy_name, "'; use another out_dir or resume = false");
    st = detail::trainer_state::from_json(j, "'" + last.string() + "'");
    MAMMOCL_CHECK(st.stage >= 0 && st.stage < strategy.num_stages(), io_error, "trainer: '", last.string(),
                  "' is at stage ", st.stage, " but the strategy has ", strategy.num_stages());
    if (opt.extend_finished_stage && st.stage_done && st.epoch < strategy.stage(st.stage).epochs &&
        std::find(st.stopped_early.begin(), st.stopped_early.end(), st.stage) == st.stopped_early.end())
      st.stage_done = false;
    strategy.begin_stage(st.stage);  // the optimizer of that stage must exist to receive its state
    io::load_state(strategy, f);
    result.resumed = true;
  } else {
    strategy.begin_stage(0);
  }

  for (; st.stage < strategy.num_stages(); ++st.stage) {
    const stage_info info = strategy.stage(st.stage);
    const stage_options& so = strategy.stage_opts(st.stage);
    const std::int64_t stage_steps = spe * info.epochs;
    // st.stage_done: resumed from the checkpoint written at the end of this stage.
    for (; !st.stage_done && st.epoch < info.epochs; ++st.epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::string label = strategy_name + " " + info.name + " epoch " + std::to_string(st.epoch + 1) + "/" +
                                std::to_string(info.epochs);
      std::optional<progress_bar> bar;
      if (opt.progress) bar.emplace(label, spe, opt.progress_stream);
      const std::int64_t first_step = st.step;
      double lr = 0;
      for (; st.step < spe; ++st.step) {
        const std::string where = "trainer: " + strategy_name + " stage '" + info.name + "' (" +
                                  std::to_string(st.stage + 1) + "/" + std::to_string(strategy.num_stages()) +
                                  "), epoch " + std::to_string(st.epoch + 1) + ", step " + std::to_string(st.step + 1) +
                                  ": ";
        step_result r;
        try {
          const data::batch b = train.get_batch({st.stage, st.epoch, st.step, info.views});
          MAMMOCL_EXPECTS(b.views == info.views, "the stage needs ", info.views, " view", info.views > 1 ? "s" : "",
                          " per sample but the source gave ", b.views);
          for (std::size_t i = 0; i < b.images.size(); ++i)
            MAMMOCL_CHECK(std::isfinite(b.images[i]), numeric_error, "the batch holds a non-finite pixel (",
                          b.images[i], ") in image ", static_cast<index_t>(i) / (b.channels * b.height * b.width));
          for (std::size_t i = 0; i < b.labels.size(); ++i)
            MAMMOCL_EXPECTS(b.labels[i] >= 0 && b.labels[i] < num_classes, "label ", b.labels[i], " of sample ", i,
                            " (id ", i < b.ids.size() ? b.ids[i] : -1, ") is outside [0, ", num_classes, ")");
          lr = stage_lr(so, st.stage_step, spe);
          r = strategy.train_step(ctx, b, {st.stage, st.epoch, st.step, st.stage_step, stage_steps, lr});
          MAMMOCL_CHECK(std::isfinite(r.loss), numeric_error, "the loss is ", r.loss);
          st.seen += b.samples;
        } catch (const mammocl::error&) {
          detail::rethrow_with(where);
        }
        st.loss_sum += r.loss;
        st.class_sum += r.class_loss;
        st.domain_sum += r.domain_loss;
        st.correct += r.correct;
        st.counted += r.counted;
        ++st.stage_step;
        ++st.global_step;
        if (bar) {
          const double done = static_cast<double>(st.step + 1);
          bar->update(st.step + 1, st.loss_sum / done, st.counted ? static_cast<double>(st.correct) / st.counted : 0.0,
                      static_cast<long>(st.seen));
        }
        if (opt.on_step) opt.on_step({S::name, st.stage, st.epoch, st.step, st.global_step, r.loss, lr});
        if (opt.checkpoint_every > 0 && (st.step + 1) % opt.checkpoint_every == 0 && st.step + 1 < spe) {
          ++st.step;  // the checkpoint records the steps done
          save_last();
          --st.step;
        }
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

      nlohmann::json line = {{"strategy", strategy_name}, {"stage", st.stage + 1}, {"stage_name", info.name},
                             {"epoch", st.epoch + 1}, {"lr", lr}, {"train_loss", st.loss_sum / spe},
                             {"global_step", st.global_step}};
      if (st.counted) line["train_accuracy"] = static_cast<double>(st.correct) / st.counted;
      if (st.domain_sum != 0) {
        line["class_loss"] = st.class_sum / spe;
        line["domain_loss"] = st.domain_sum / spe;
      }
      if (first_step == 0) line["images_per_second"] = seconds > 0 ? st.seen / seconds : 0.0;
      bool stop = false;
      if (info.validate && val) {
        validation_result v;
        try {
          v = validate(ctx, strategy, *val, num_classes);
        } catch (const mammocl::error&) {
          detail::rethrow_with("trainer: " + strategy_name + " stage '" + info.name + "', validation after epoch " +
                               std::to_string(st.epoch + 1) + ": ");
        }
        line["val_auc"] = std::isnan(v.auc) ? nlohmann::json(nullptr) : nlohmann::json(v.auc);
        line["val_accuracy"] = v.accuracy;
        for (int d = 0; d < 2; ++d)
          if (v.auc_domain[d]) line["val_auc_domain" + std::to_string(d)] = *v.auc_domain[d];
        const bool improved = !std::isnan(v.auc) && (std::isnan(st.best_metric) || v.auc > st.best_metric + opt.min_delta);
        if (improved) {
          st.best_metric = v.auc;
          st.best_stage = st.stage;
          st.best_epoch = st.epoch;
          st.bad_epochs = 0;
          io::save_state(strategy.model(), best,
                         {{"strategy", strategy_name}, {"stage", info.name}, {"epoch", std::to_string(st.epoch + 1)},
                          {"val_auc", std::to_string(v.auc)}});
        } else {
          ++st.bad_epochs;
          stop = opt.patience > 0 && st.bad_epochs >= opt.patience;
        }
        line["best"] = improved;
      }
      line["seconds"] = seconds;
      st.log.push_back(line);
      detail::write_log(log_path, st.log);
      st.step = 0;
      st.loss_sum = st.class_sum = st.domain_sum = 0;
      st.correct = st.counted = st.seen = 0;
      if (stop) st.stopped_early.push_back(st.stage);
      // The checkpoint records the epochs finished and whether the stage is over.
      const int current = st.epoch;
      st.epoch = current + 1;
      st.stage_done = stop || st.epoch >= info.epochs;
      save_last();
      st.epoch = current;
      if (stop) break;
    }
    // Next stage: fresh counters, a new optimizer (and head, for stage 2 of the SupCon strategies).
    st.epoch = 0;
    st.step = 0;
    st.stage_step = 0;
    st.stage_done = false;
    st.bad_epochs = 0;
    if (st.stage + 1 < strategy.num_stages()) strategy.begin_stage(st.stage + 1);
  }

  result.log = st.log;
  result.steps = st.global_step;
  result.best_metric = st.best_metric;
  result.best_stage = st.best_stage;
  result.best_epoch = st.best_epoch;
  result.stopped_early = st.stopped_early;
  if (st.best_stage >= 0) {
    result.best_checkpoint = best;
    if (opt.restore_best) io::load_state(strategy.model(), best);
  }
  return result;
}

}  // namespace mammocl::train
