// t-SNE kernels: exact kNN, perplexity calibration, symmetric P in CSR, Barnes-Hut and exact
// gradients, KL divergence, and scikit-learn's gains + momentum optimiser.
//
// Determinism: every per-point quantity (forces, normalisation partials, KL partials) is computed
// by one thread from data that does not depend on the thread count, and every global sum is
// taken over per-point partials in a fixed order. Results are therefore bit-identical at any
// n_threads.
//
// Notes on speed. Repulsion uses a quadtree over Morton-sorted float32 positions, stored as a
// preorder node array with skip links (stackless traversal, no pointers). Traversal is done per
// leaf ("group"), not per point: one interaction list is built for all points of a leaf with a
// conservative acceptance test (distance from the node's centre of mass to the leaf's bounding
// box), then evaluated for each point in a branch-free loop the compiler vectorises. The
// conservative test makes the approximation at least as accurate as per-point Barnes-Hut with
// the same angle.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "blas.hpp"
#include "parallel.hpp"

namespace leafrbm {
namespace tsne {

// TaskTeam (parallel.hpp): the blocking worker team used for the per-iteration passes.

// ---------------------------------------------------------------------------------------------
// Exact k nearest neighbours (squared Euclidean distances).
// ---------------------------------------------------------------------------------------------

/// For each of the m query rows, the k nearest of the n reference rows (ascending by squared
/// distance, ties by index). With `exclude_self`, query row i is reference row i and is skipped.
/// Distances are selected through blocked GEMM and then recomputed exactly for the chosen pairs.
template <class T>
void knn_sqeuclidean(const T* reference, index_t n, index_t d, const T* query, index_t m, index_t k,
                     bool exclude_self, std::int64_t* out_indices, float* out_sqdist, int n_threads) {
  if (k < 1 || k > n - (exclude_self ? 1 : 0)) throw std::invalid_argument("knn: k out of range");
  check_blas_dimension(n, "n_samples");
  check_blas_dimension(d, "n_features");
  std::vector<T> ref_norms(n), query_norms(m);
  for (index_t i = 0; i < n; ++i) {
    T s = 0;
    for (index_t c = 0; c < d; ++c) s += reference[i * d + c] * reference[i * d + c];
    ref_norms[i] = s;
  }
  for (index_t i = 0; i < m; ++i) {
    T s = 0;
    for (index_t c = 0; c < d; ++c) s += query[i * d + c] * query[i * d + c];
    query_norms[i] = s;
  }
  constexpr index_t row_tile = 64, col_block = 1024;
  const Tiling rows{m, row_tile};
  parallel_for(rows.count(), n_threads, [&](index_t tile) {
    const Range r = rows[tile];
    const index_t nr = r.size();
    std::vector<T> block(static_cast<size_t>(nr * col_block));
    // Per row: a max-heap of (distance, index) of size <= k.
    std::vector<std::pair<T, std::int64_t>> heaps(static_cast<size_t>(nr * k));
    std::vector<index_t> sizes(nr, 0);
    for (index_t c0 = 0; c0 < n; c0 += col_block) {
      const index_t nc = std::min(col_block, n - c0);
      gemm(false, true, nr, nc, d, T(-2), query + r.begin * d, d, reference + c0 * d, d, T(0), block.data(), nc);
      for (index_t a = 0; a < nr; ++a) {
        const index_t qi = r.begin + a;
        auto* heap = heaps.data() + a * k;
        index_t& size = sizes[a];
        const T* row = block.data() + a * nc;
        const T* norms = ref_norms.data() + c0;
        const T query_norm = query_norms[qi];
        // Columns arrive in increasing index order, so a candidate that does not beat the worst
        // kept distance strictly would lose the (distance, index) comparison anyway.
        T worst = size == k ? heap[0].first : std::numeric_limits<T>::infinity();
        for (index_t b = 0; b < nc; ++b) {
          const T dist = row[b] + query_norm + norms[b];
          if (size == k && !(dist < worst)) continue;
          const index_t j = c0 + b;
          if (exclude_self && j == qi) continue;
          const std::pair<T, std::int64_t> item{dist, j};
          if (size < k) {
            heap[size++] = item;
            std::push_heap(heap, heap + size);
          } else {
            std::pop_heap(heap, heap + k);
            heap[k - 1] = item;
            std::push_heap(heap, heap + k);
          }
          if (size == k) worst = heap[0].first;
        }
      }
    }
    for (index_t a = 0; a < nr; ++a) {
      const index_t qi = r.begin + a;
      auto* heap = heaps.data() + a * k;
      // Exact distances for the chosen pairs, then the final order.
      for (index_t t = 0; t < k; ++t) {
        const T* x = query + qi * d;
        const T* y = reference + heap[t].second * d;
        T s = 0;
        for (index_t c = 0; c < d; ++c) {
          const T diff = x[c] - y[c];
          s += diff * diff;
        }
        heap[t].first = s;
      }
      std::sort(heap, heap + k);
      for (index_t t = 0; t < k; ++t) {
        out_indices[qi * k + t] = heap[t].second;
        out_sqdist[qi * k + t] = static_cast<float>(heap[t].first);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Perplexity calibration (scikit-learn's _binary_search_perplexity).
// ---------------------------------------------------------------------------------------------

/// Conditional P (n×k, rows sum to 1) from squared neighbour distances, by a per-row binary
/// search on the precision beta so that the row's entropy is log(perplexity) within 1e-5
/// (100 steps at most). Returns the number of rows that did not converge.
inline index_t binary_search_perplexity(const float* sqdist, index_t n, index_t k, double perplexity,
                                        double* conditional_p, int n_threads) {
  constexpr int n_steps = 100;
  constexpr double tolerance = 1e-5, epsilon = 1e-8;
  const double desired_entropy = std::log(perplexity);
  const Tiling rows{n, 256};
  std::vector<index_t> not_converged(rows.count(), 0);
  parallel_for(rows.count(), n_threads, [&](index_t tile) {
    const Range r = rows[tile];
    for (index_t i = r.begin; i < r.end; ++i) {
      const float* dist = sqdist + i * k;
      double* p = conditional_p + i * k;
      double beta_min = -std::numeric_limits<double>::infinity();
      double beta_max = std::numeric_limits<double>::infinity();
      double beta = 1.0;
      bool converged = false;
      for (int step = 0; step < n_steps; ++step) {
        double sum_p = 0.0;
        for (index_t j = 0; j < k; ++j) {
          p[j] = std::exp(-static_cast<double>(dist[j]) * beta);
          sum_p += p[j];
        }
        if (sum_p == 0.0) sum_p = epsilon;
        double sum_dist_p = 0.0;
        for (index_t j = 0; j < k; ++j) {
          p[j] /= sum_p;
          sum_dist_p += static_cast<double>(dist[j]) * p[j];
        }
        const double entropy = std::log(sum_p) + beta * sum_dist_p;
        const double diff = entropy - desired_entropy;
        if (std::fabs(diff) <= tolerance) {
          converged = true;
          break;
        }
        if (diff > 0) {
          beta_min = beta;
          beta = (beta_max == std::numeric_limits<double>::infinity()) ? beta * 2.0 : (beta + beta_max) / 2.0;
        } else {
          beta_max = beta;
          beta = (beta_min == -std::numeric_limits<double>::infinity()) ? beta / 2.0 : (beta + beta_min) / 2.0;
        }
      }
      if (!converged) ++not_converged[tile];
    }
  });
  index_t total = 0;
  for (index_t c : not_converged) total += c;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Symmetric joint P in CSR.
// ---------------------------------------------------------------------------------------------

/// A CSR matrix with double values (rows sorted by column).
struct Csr {
  std::vector<std::int64_t> indptr, indices;
  std::vector<double> data;
};

/// P = (C + Cᵀ) / sum(C + Cᵀ) for the n×k conditional matrix C given by (indices, values).
inline Csr symmetrize(const std::int64_t* neighbors, const double* conditional_p, index_t n, index_t k) {
  // Transposed entries: for each column j, the (i, value) pairs with neighbors[i, t] == j.
  std::vector<std::int64_t> t_ptr(n + 1, 0);
  for (index_t e = 0; e < n * k; ++e) {
    const std::int64_t j = neighbors[e];
    if (j < 0 || j >= n) throw std::invalid_argument("symmetrize: neighbour index out of range");
    ++t_ptr[j + 1];
  }
  for (index_t i = 0; i < n; ++i) t_ptr[i + 1] += t_ptr[i];
  std::vector<std::int64_t> t_idx(n * k), fill(t_ptr.begin(), t_ptr.end() - 1);
  std::vector<double> t_val(n * k);
  for (index_t i = 0; i < n; ++i) {
    for (index_t t = 0; t < k; ++t) {
      const std::int64_t j = neighbors[i * k + t];
      t_idx[fill[j]] = i;
      t_val[fill[j]] = conditional_p[i * k + t];
      ++fill[j];
    }
  }
  Csr out;
  out.indptr.assign(n + 1, 0);
  out.indices.reserve(2 * n * k);
  out.data.reserve(2 * n * k);
  std::vector<std::pair<std::int64_t, double>> row;
  for (index_t i = 0; i < n; ++i) {
    row.clear();
    for (index_t t = 0; t < k; ++t) row.emplace_back(neighbors[i * k + t], conditional_p[i * k + t]);
    for (std::int64_t e = t_ptr[i]; e < t_ptr[i + 1]; ++e) row.emplace_back(t_idx[e], t_val[e]);
    std::stable_sort(row.begin(), row.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t e = 0; e < row.size();) {
      const std::int64_t col = row[e].first;
      double v = row[e].second;
      size_t f = e + 1;
      while (f < row.size() && row[f].first == col) v += row[f++].second;
      out.indices.push_back(col);
      out.data.push_back(v);
      e = f;
    }
    out.indptr[i + 1] = static_cast<std::int64_t>(out.indices.size());
  }
  double total = 0.0;
  for (double v : out.data) total += v;
  total = std::max(total, std::numeric_limits<double>::epsilon());
  for (double& v : out.data) v /= total;
  return out;
}

/// Read-only CSR view (P for the optimiser).
struct CsrView {
  const std::int64_t* indptr;
  const std::int64_t* indices;
  const double* data;
  index_t n_rows;
};

// ---------------------------------------------------------------------------------------------
// Kernel of the Student-t distribution with `dof` degrees of freedom.
//   u = 1 / (1 + d²/dof),  w = u^((dof + 1) / 2)   (q ∝ w; the gradient carries w·u).
// ---------------------------------------------------------------------------------------------

struct Kernel {
  double dof;
  bool cauchy() const { return dof == 1.0; }
  double exponent() const { return (dof + 1.0) / 2.0; }
  /// The constant of the gradient of KL: 2 (dof + 1) / dof (4 for dof = 1).
  double gradient_factor() const { return 2.0 * (dof + 1.0) / dof; }
};

// ---------------------------------------------------------------------------------------------
// Quadtree on Morton-sorted positions.
// ---------------------------------------------------------------------------------------------

/// A node of the flat quadtree, in preorder. Children of node i start at i + 1; `skip` is the
/// index after the node's subtree (a leaf has skip == i + 1). Points [begin, end) of the sorted
/// order lie in the node.
struct Node {
  float cx, cy;       // centre of mass
  float mass;         // number of points
  float width2;       // squared side of the cell
  std::int32_t skip;
  std::int32_t begin, end;
  std::int32_t pad;
};

class QuadTree {
 public:
  static constexpr int max_depth = 16;
  static constexpr index_t leaf_size = 16;

  /// Rebuilds the tree for positions y (n×2, row-major, double). Points with the same Morton
  /// code keep the order of `canonical` (a permutation of [0, n); identity when null), so the
  /// tree does not depend on how the points happen to be labelled.
  void build(const double* y, index_t n, const std::int32_t* canonical = nullptr) {
    n_ = n;
    double min_x = std::numeric_limits<double>::infinity(), min_y = min_x;
    double max_x = -min_x, max_y = -min_x;
    for (index_t i = 0; i < n; ++i) {
      min_x = std::min(min_x, y[2 * i]);
      max_x = std::max(max_x, y[2 * i]);
      min_y = std::min(min_y, y[2 * i + 1]);
      max_y = std::max(max_y, y[2 * i + 1]);
    }
    double side = std::max(max_x - min_x, max_y - min_y);
    if (!(side > 0)) side = 1.0;
    side *= 1.0 + 1e-6;
    side_ = side;
    const double scale = 65536.0 / side;
    codes_.resize(n);
    order_.resize(n);
    for (index_t t = 0; t < n; ++t) {
      const index_t i = canonical ? canonical[t] : t;
      const auto qx = static_cast<std::uint32_t>(std::min(65535.0, (y[2 * i] - min_x) * scale));
      const auto qy = static_cast<std::uint32_t>(std::min(65535.0, (y[2 * i + 1] - min_y) * scale));
      codes_[t] = (spread(qx) << 1) | spread(qy);
      order_[t] = static_cast<std::int32_t>(i);
    }
    radix_sort();
    x_.resize(n);
    y_.resize(n);
    for (index_t s = 0; s < n; ++s) {
      x_[s] = static_cast<float>(y[2 * order_[s]]);
      y_[s] = static_cast<float>(y[2 * order_[s] + 1]);
    }
    nodes_.clear();
    nodes_.reserve(static_cast<size_t>(2 * n / leaf_size + 64));
    leaves_.clear();
    if (n > 0) build_node(0, static_cast<std::int32_t>(n), 0);
  }

  index_t size() const { return n_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<std::int32_t>& leaves() const { return leaves_; }
  const std::vector<std::int32_t>& order() const { return order_; }
  const float* xs() const { return x_.data(); }
  const float* ys() const { return y_.data(); }

 private:
  static std::uint32_t spread(std::uint32_t v) {
    v &= 0xFFFFu;
    v = (v | (v << 8)) & 0x00FF00FFu;
    v = (v | (v << 4)) & 0x0F0F0F0Fu;
    v = (v | (v << 2)) & 0x33333333u;
    v = (v | (v << 1)) & 0x55555555u;
    return v;
  }

  void radix_sort() {
    std::vector<std::uint32_t> codes_tmp(n_);
    std::vector<std::int32_t> order_tmp(n_);
    for (int pass = 0; pass < 4; ++pass) {
      const int shift = 8 * pass;
      index_t count[257] = {0};
      for (index_t i = 0; i < n_; ++i) ++count[((codes_[i] >> shift) & 0xFFu) + 1];
      for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
      for (index_t i = 0; i < n_; ++i) {
        const index_t dst = count[(codes_[i] >> shift) & 0xFFu]++;
        codes_tmp[dst] = codes_[i];
        order_tmp[dst] = order_[i];
      }
      codes_.swap(codes_tmp);
      order_.swap(order_tmp);
    }
  }

  /// Appends the subtree of points [begin, end) at `depth`; returns its (sum x, sum y).
  std::pair<double, double> build_node(std::int32_t begin, std::int32_t end, int depth) {
    const auto self = static_cast<std::int32_t>(nodes_.size());
    nodes_.push_back(Node{});
    const double width = side_ / static_cast<double>(1u << depth);
    double sx = 0.0, sy = 0.0;
    if (end - begin <= leaf_size || depth == max_depth) {
      for (std::int32_t s = begin; s < end; ++s) {
        sx += x_[s];
        sy += y_[s];
      }
      leaves_.push_back(self);
    } else {
      const int shift = 2 * (max_depth - 1 - depth);
      std::int32_t lo = begin;
      for (std::uint32_t digit = 0; digit < 4; ++digit) {
        std::int32_t hi = lo;
        while (hi < end && ((codes_[hi] >> shift) & 3u) == digit) ++hi;
        if (hi > lo) {
          const auto sums = build_node(lo, hi, depth + 1);
          sx += sums.first;
          sy += sums.second;
        }
        lo = hi;
      }
    }
    Node& node = nodes_[self];
    const double mass = static_cast<double>(end - begin);
    node.cx = static_cast<float>(sx / mass);
    node.cy = static_cast<float>(sy / mass);
    node.mass = static_cast<float>(mass);
    node.width2 = static_cast<float>(width * width);
    node.skip = static_cast<std::int32_t>(nodes_.size());
    node.begin = begin;
    node.end = end;
    return {sx, sy};
  }

  index_t n_ = 0;
  double side_ = 1.0;
  std::vector<std::uint32_t> codes_;
  std::vector<std::int32_t> order_;
  std::vector<float> x_, y_;
  std::vector<Node> nodes_;
  std::vector<std::int32_t> leaves_;
};

/// Interaction list of one group of query points: masses at positions (SoA, float32).
struct InteractionList {
  std::vector<float> x, y, m;
  void clear() {
    x.clear();
    y.clear();
    m.clear();
  }
  void add(float px, float py, float mass) {
    x.push_back(px);
    y.push_back(py);
    m.push_back(mass);
  }
};

/// Fills `list` with the interactions for query points inside the box [lo_x, hi_x]×[lo_y, hi_y]:
/// nodes accepted by the Barnes-Hut test (width / distance < angle, with the distance from the
/// centre of mass to the box) and the single points of leaves that are not. Nodes whose range
/// intersects [own_begin, own_end) are always opened, so each own point appears once, directly.
inline void build_interactions(const QuadTree& tree, float lo_x, float hi_x, float lo_y, float hi_y,
                               std::int32_t own_begin, std::int32_t own_end, float inv_angle2,
                               InteractionList& list) {
  list.clear();
  const auto& nodes = tree.nodes();
  const float* xs = tree.xs();
  const float* ys = tree.ys();
  const auto n_nodes = static_cast<std::int32_t>(nodes.size());
  std::int32_t i = 0;
  while (i < n_nodes) {
    const Node& node = nodes[i];
    const bool overlaps = node.begin < own_end && own_begin < node.end;
    if (!overlaps) {
      const float dx = std::max(std::max(lo_x - node.cx, node.cx - hi_x), 0.0f);
      const float dy = std::max(std::max(lo_y - node.cy, node.cy - hi_y), 0.0f);
      const float d2 = dx * dx + dy * dy;
      if (node.width2 * inv_angle2 < d2) {
        list.add(node.cx, node.cy, node.mass);
        i = node.skip;
        continue;
      }
    }
    if (node.skip == i + 1) {
      for (std::int32_t s = node.begin; s < node.end; ++s) list.add(xs[s], ys[s], 1.0f);
      i = node.skip;
    } else {
      ++i;
    }
  }
}

/// Repulsive sums of the point (px, py) over an interaction list, Cauchy kernel:
/// z = Σ m·w, f = Σ m·w²·(p - x). Eight fixed lanes, so the summation order is the same
/// whatever the vector width the compiler picks.
inline void evaluate_cauchy(const InteractionList& list, float px, float py, double& z, double& fx,
                            double& fy) {
  constexpr int lanes = 8;
  float az[lanes] = {0}, ax[lanes] = {0}, ay[lanes] = {0};
  const size_t n = list.x.size();
  const float* lx = list.x.data();
  const float* ly = list.y.data();
  const float* lm = list.m.data();
  size_t j = 0;
  for (; j + lanes <= n; j += lanes) {
    for (int l = 0; l < lanes; ++l) {
      const float dx = px - lx[j + l];
      const float dy = py - ly[j + l];
      const float w = 1.0f / (1.0f + dx * dx + dy * dy);
      const float mw = lm[j + l] * w;
      az[l] += mw;
      const float mww = mw * w;
      ax[l] += mww * dx;
      ay[l] += mww * dy;
    }
  }
  for (int l = 0; j < n; ++j, ++l) {
    const float dx = px - lx[j];
    const float dy = py - ly[j];
    const float w = 1.0f / (1.0f + dx * dx + dy * dy);
    const float mw = lm[j] * w;
    az[l] += mw;
    const float mww = mw * w;
    ax[l] += mww * dx;
    ay[l] += mww * dy;
  }
  double sz = 0, sx = 0, sy = 0;
  for (int l = 0; l < lanes; ++l) {
    sz += az[l];
    sx += ax[l];
    sy += ay[l];
  }
  z = sz;
  fx = sx;
  fy = sy;
}

/// As evaluate_cauchy for any dof: w = u^((dof+1)/2), f = Σ m·w·u·(p - x), in double.
inline void evaluate_general(const InteractionList& list, float px, float py, const Kernel& kernel, double& z,
                             double& fx, double& fy) {
  const double inv_dof = 1.0 / kernel.dof, exponent = kernel.exponent();
  double sz = 0, sx = 0, sy = 0;
  for (size_t j = 0; j < list.x.size(); ++j) {
    const double dx = static_cast<double>(px) - list.x[j];
    const double dy = static_cast<double>(py) - list.y[j];
    const double u = 1.0 / (1.0 + (dx * dx + dy * dy) * inv_dof);
    const double mw = list.m[j] * std::pow(u, exponent);
    sz += mw;
    sx += mw * u * dx;
    sy += mw * u * dy;
  }
  z = sz;
  fx = sx;
  fy = sy;
}

/// Workspace reused across iterations (tree, per-point buffers).
struct GradientWorkspace {
  QuadTree tree;
  std::vector<double> rep_x, rep_y, rep_z;  // in sorted order
  std::vector<double> row_kl;
  // float32 copies for the Barnes-Hut attraction: positions, P's columns and values.
  std::vector<float> y32, p_values32, attraction;
  std::vector<std::int32_t> p_columns32;
  const double* prepared_for = nullptr;
  /// When the points are relabelled: canonical[t] is the label of original point t. Global
  /// sums and tie-breaks follow this order, so results do not depend on the labelling.
  std::vector<std::int32_t> canonical;
  /// Blocking worker team for the per-iteration passes (null: OpenMP parallel_for).
  TaskTeam* team = nullptr;

  template <class Body>
  void run_tiles(index_t n_tiles, int n_threads, Body&& body) {
    if (team) {
      team->run(n_tiles, std::function<void(index_t)>(std::forward<Body>(body)));
    } else {
      parallel_for(n_tiles, n_threads, std::forward<Body>(body));
    }
  }

  const std::int32_t* canonical_or_null() const { return canonical.empty() ? nullptr : canonical.data(); }
  index_t label_at(index_t t) const { return canonical.empty() ? t : canonical[t]; }

  void prepare_attraction(const CsrView& p) {
    const index_t nnz = p.indptr[p.n_rows];
    if (prepared_for == p.data && static_cast<index_t>(p_values32.size()) == nnz) return;
    p_values32.resize(nnz);
    p_columns32.resize(nnz);
    for (index_t e = 0; e < nnz; ++e) {
      p_values32[e] = static_cast<float>(p.data[e]);
      p_columns32[e] = static_cast<std::int32_t>(p.indices[e]);
    }
    prepared_for = p.data;
  }
};

/// Barnes-Hut repulsion for the tree's own points. Writes, per point in original order,
/// rep (n×2: Σ_j w u (y_i - y_j)) and returns Z = Σ_{i≠j} w_ij (summed in sorted order).
/// per_point(i) is also called once for every point i, in the same parallel pass (so that the
/// attraction needs no parallel region of its own).
template <class PerPoint>
double bh_repulsion(const double* y, index_t n, const Kernel& kernel, double angle, GradientWorkspace& ws,
                    double* rep, int n_threads, PerPoint&& per_point) {
  QuadTree& tree = ws.tree;
  tree.build(y, n, ws.canonical_or_null());
  ws.rep_x.assign(n, 0.0);
  ws.rep_y.assign(n, 0.0);
  ws.rep_z.assign(n, 0.0);
  const auto& leaves = tree.leaves();
  const auto& nodes = tree.nodes();
  const float inv_angle2 = angle > 0 ? static_cast<float>(1.0 / (angle * angle)) : std::numeric_limits<float>::infinity();
  const float* xs = tree.xs();
  const float* ys = tree.ys();
  const Tiling tiles{static_cast<index_t>(leaves.size()), 8};
  ws.run_tiles(tiles.count(), n_threads, [&](index_t tile) {
    thread_local InteractionList list;
    const Range r = tiles[tile];
    for (index_t li = r.begin; li < r.end; ++li) {
      const Node& leaf = nodes[leaves[li]];
      float lo_x = xs[leaf.begin], hi_x = lo_x, lo_y = ys[leaf.begin], hi_y = lo_y;
      for (std::int32_t s = leaf.begin + 1; s < leaf.end; ++s) {
        lo_x = std::min(lo_x, xs[s]);
        hi_x = std::max(hi_x, xs[s]);
        lo_y = std::min(lo_y, ys[s]);
        hi_y = std::max(hi_y, ys[s]);
      }
      build_interactions(tree, lo_x, hi_x, lo_y, hi_y, leaf.begin, leaf.end, inv_angle2, list);
      for (std::int32_t s = leaf.begin; s < leaf.end; ++s) {
        double z, fx, fy;
        if (kernel.cauchy()) {
          evaluate_cauchy(list, xs[s], ys[s], z, fx, fy);
        } else {
          evaluate_general(list, xs[s], ys[s], kernel, z, fx, fy);
        }
        ws.rep_z[s] = z - 1.0;  // the point itself: w(0) = 1, no force
        ws.rep_x[s] = fx;
        ws.rep_y[s] = fy;
        per_point(static_cast<index_t>(tree.order()[s]));
      }
    }
  });
  double sum_z = 0.0;
  const auto& order = tree.order();
  for (index_t s = 0; s < n; ++s) {
    sum_z += ws.rep_z[s];
    rep[2 * order[s]] = ws.rep_x[s];
    rep[2 * order[s] + 1] = ws.rep_y[s];
  }
  return sum_z;
}

/// Exact repulsion, O(n²), in double, for any dimension: rep (n×dim) = Σ_j w u (y_i - y_j);
/// returns Z = Σ_{i≠j} w_ij (per-row partials summed in row order).
inline double exact_repulsion(const double* y, index_t n, int dim, const Kernel& kernel, double* rep,
                              std::vector<double>& row_z, int n_threads) {
  row_z.assign(n, 0.0);
  const Tiling rows{n, 32};
  const double inv_dof = 1.0 / kernel.dof, exponent = kernel.exponent();
  parallel_for(rows.count(), n_threads, [&](index_t tile) {
    const Range r = rows[tile];
    double f[8];
    for (index_t i = r.begin; i < r.end; ++i) {
      double z = 0;
      for (int c = 0; c < dim; ++c) f[c] = 0;
      for (index_t j = 0; j < n; ++j) {
        if (j == i) continue;
        double d2 = 0;
        for (int c = 0; c < dim; ++c) {
          const double diff = y[dim * i + c] - y[dim * j + c];
          d2 += diff * diff;
        }
        const double u = 1.0 / (1.0 + d2 * inv_dof);
        const double w = kernel.cauchy() ? u : std::pow(u, exponent);
        z += w;
        for (int c = 0; c < dim; ++c) f[c] += w * u * (y[dim * i + c] - y[dim * j + c]);
      }
      row_z[i] = z;
      for (int c = 0; c < dim; ++c) rep[dim * i + c] = f[c];
    }
  });
  double sum_z = 0.0;
  for (index_t i = 0; i < n; ++i) sum_z += row_z[i];
  return sum_z;
}

/// Gradient of KL(exaggeration·P ‖ Q) for an embedding y (n×dim): attraction over the CSR rows
/// of P, repulsion by Barnes-Hut (exact = false; dim must be 2) or exactly. Returns the KL
/// divergence Σ p log(p / q) over the non-zeros of P (p exaggerated, as scikit-learn reports it)
/// when compute_error, else 0.
inline double gradient(const double* y, int dim, const CsrView& p, double exaggeration, const Kernel& kernel,
                       double angle, bool exact, bool compute_error, double* grad, GradientWorkspace& ws,
                       int n_threads) {
  const index_t n = p.n_rows;
  if (dim < 1 || dim > 8) throw std::invalid_argument("gradient: dim must be in [1, 8]");
  if (!exact && dim != 2) throw std::invalid_argument("gradient: Barnes-Hut needs dim == 2");
  const double factor = kernel.gradient_factor();
  const double inv_dof = 1.0 / kernel.dof, exponent = kernel.exponent();
  constexpr double float_tiny = 1.1754943508222875e-38;
  if (compute_error) ws.row_kl.assign(n, 0.0);
  const Tiling rows{n, 256};
  // grad temporarily holds the repulsive sums.
  double sum_z;
  if (exact) {
    sum_z = exact_repulsion(y, n, dim, kernel, grad, ws.rep_z, n_threads);
  } else {
    // Attraction in float32 (as scikit-learn's Barnes-Hut), per row, in the repulsion's pass.
    ws.prepare_attraction(p);
    ws.y32.resize(2 * n);
    ws.attraction.resize(2 * n);
    for (index_t c = 0; c < 2 * n; ++c) ws.y32[c] = static_cast<float>(y[c]);
    const float* yf = ws.y32.data();
    const float* values = ws.p_values32.data();
    const std::int32_t* columns = ws.p_columns32.data();
    const float inv_dof32 = static_cast<float>(inv_dof);
    float* attraction = ws.attraction.data();
    sum_z = bh_repulsion(y, n, kernel, angle, ws, grad, n_threads, [&](index_t i) {
      const float yx = yf[2 * i], yy = yf[2 * i + 1];
      float ax = 0.0f, ay = 0.0f;
      for (std::int64_t e = p.indptr[i]; e < p.indptr[i + 1]; ++e) {
        const std::int32_t j = columns[e];
        const float dx = yx - yf[2 * j], dy = yy - yf[2 * j + 1];
        const float pu = values[e] / (1.0f + (dx * dx + dy * dy) * inv_dof32);
        ax += pu * dx;
        ay += pu * dy;
      }
      attraction[2 * i] = ax;
      attraction[2 * i + 1] = ay;
    });
    const double inv_z = 1.0 / sum_z;
    for (index_t c = 0; c < 2 * n; ++c) grad[c] = factor * (exaggeration * attraction[c] - grad[c] * inv_z);
  }
  const double inv_z = 1.0 / sum_z;
  if (exact || compute_error) ws.run_tiles(rows.count(), n_threads, [&](index_t tile) {
    {
      const Range r = rows[tile];
      double a[8];
      for (index_t i = r.begin; i < r.end; ++i) {
        const double* yi = y + dim * i;
        double kl = 0;
        for (int c = 0; c < dim; ++c) a[c] = 0;
        for (std::int64_t e = p.indptr[i]; e < p.indptr[i + 1]; ++e) {
          const double* yj = y + dim * p.indices[e];
          double d2 = 0;
          for (int c = 0; c < dim; ++c) d2 += (yi[c] - yj[c]) * (yi[c] - yj[c]);
          const double u = 1.0 / (1.0 + d2 * inv_dof);
          const double pij = exaggeration * p.data[e];
          if (exact) {
            for (int c = 0; c < dim; ++c) a[c] += pij * u * (yi[c] - yj[c]);
          }
          if (compute_error) {
            const double w = kernel.cauchy() ? u : std::pow(u, exponent);
            const double q = w * inv_z;
            kl += pij * std::log(std::max(pij, float_tiny) / std::max(q, float_tiny));
          }
        }
        if (exact) {
          for (int c = 0; c < dim; ++c) grad[dim * i + c] = factor * (a[c] - grad[dim * i + c] * inv_z);
        }
        if (compute_error) ws.row_kl[i] = kl;
      }
    }
  });
  if (!compute_error) return 0.0;
  double kl = 0.0;
  for (index_t t = 0; t < n; ++t) kl += ws.row_kl[ws.label_at(t)];
  return kl;
}

/// Exact KL(P ‖ Q) with Q over all n² pairs (for evaluation): Σ p log p − Σ p log w + log Z · Σ p.
inline double kl_divergence_exact(const double* y, int dim, const CsrView& p, const Kernel& kernel, int n_threads) {
  const index_t n = p.n_rows;
  std::vector<double> rep(static_cast<size_t>(dim * n)), row_z;
  const double sum_z = exact_repulsion(y, n, dim, kernel, rep.data(), row_z, n_threads);
  const double inv_dof = 1.0 / kernel.dof, exponent = kernel.exponent();
  std::vector<double> row_kl(n, 0.0), row_p(n, 0.0);
  const Tiling rows{n, 256};
  parallel_for(rows.count(), n_threads, [&](index_t tile) {
    const Range r = rows[tile];
    for (index_t i = r.begin; i < r.end; ++i) {
      double kl = 0, total = 0;
      for (std::int64_t e = p.indptr[i]; e < p.indptr[i + 1]; ++e) {
        const double pij = p.data[e];
        if (!(pij > 0)) continue;
        const std::int64_t j = p.indices[e];
        double d2 = 0;
        for (int c = 0; c < dim; ++c) d2 += (y[dim * i + c] - y[dim * j + c]) * (y[dim * i + c] - y[dim * j + c]);
        const double u = 1.0 / (1.0 + d2 * inv_dof);
        const double log_w = kernel.cauchy() ? std::log(u) : exponent * std::log(u);
        kl += pij * (std::log(pij) - log_w);
        total += pij;
      }
      row_kl[i] = kl;
      row_p[i] = total;
    }
  });
  double kl = 0.0, total = 0.0;
  for (index_t i = 0; i < n; ++i) {
    kl += row_kl[i];
    total += row_p[i];
  }
  return kl + std::log(sum_z) * total;
}

// ---------------------------------------------------------------------------------------------
// scikit-learn's gradient descent (_gradient_descent), run in chunks.
// ---------------------------------------------------------------------------------------------

/// Optimiser state kept by the caller between chunks.
struct OptimizerState {
  double* update;      // n×2
  double* gains;       // n×2
  double best_error;   // lowest error seen at a check
  index_t best_iter;   // its iteration
};

struct OptimizerConfig {
  index_t max_iter;                 // the phase ends before this iteration
  double momentum;
  double learning_rate;
  double exaggeration;
  double angle;
  bool exact;
  index_t n_iter_without_progress;
  double min_grad_norm;
  index_t n_iter_check = 50;
  double min_gain = 0.01;
  /// Also compute the error at the last iteration of a chunk (for callbacks).
  bool error_at_chunk_end = true;
};

enum class StopReason : int { running = 0, max_iter = 1, no_progress = 2, small_gradient = 3, interrupted = 4 };

struct ChunkResult {
  index_t last_iter;   // the last iteration computed (-1 if none)
  double error;        // the error computed at last_iter (NaN if not computed there)
  double grad_norm;    // norm of the gains-scaled gradient at last_iter
  StopReason reason;
};

/// Runs iterations [first_iter, min(stop_iter, config.max_iter)) of scikit-learn's gradient
/// descent: gains +0.2 where the update and gradient disagree in sign, ×0.8 elsewhere, clipped at
/// min_gain; update = momentum·update − learning_rate·gains·grad. Every n_iter_check iterations
/// (and at the phase's last), the error is computed and the stopping rules applied.
template <class Interrupt>
ChunkResult optimize_chunk_in_place(double* y, int dim, const CsrView& p, const Kernel& kernel, OptimizerState& state,
                                    const OptimizerConfig& config, index_t first_iter, index_t stop_iter,
                                    GradientWorkspace& ws, int n_threads, Interrupt&& interrupted) {
  const index_t n = p.n_rows;
  std::vector<double> grad(static_cast<size_t>(dim * n));
  ChunkResult result{first_iter - 1, std::numeric_limits<double>::quiet_NaN(), 0.0, StopReason::running};
  const index_t end = std::min(stop_iter, config.max_iter);
  for (index_t it = first_iter; it < end; ++it) {
    const bool check = (it + 1) % config.n_iter_check == 0;
    const bool last = it == config.max_iter - 1;
    const bool compute_error = check || last || (config.error_at_chunk_end && it == end - 1);
    const double error = gradient(y, dim, p, config.exaggeration, kernel, config.angle, config.exact, compute_error,
                                  grad.data(), ws, n_threads);
    for (index_t c = 0; c < dim * n; ++c) {
      double& gain = state.gains[c];
      double& upd = state.update[c];
      gain = (upd * grad[c] < 0.0) ? gain + 0.2 : gain * 0.8;
      if (gain < config.min_gain) gain = config.min_gain;
      grad[c] *= gain;
      upd = config.momentum * upd - config.learning_rate * grad[c];
      y[c] += upd;
    }
    double norm2 = 0.0;
    for (index_t t = 0; t < n; ++t) {
      const index_t i = ws.label_at(t);
      for (int c = 0; c < dim; ++c) norm2 += grad[dim * i + c] * grad[dim * i + c];
    }
    result.last_iter = it;
    result.error = compute_error ? error : std::numeric_limits<double>::quiet_NaN();
    result.grad_norm = std::sqrt(norm2);
    if (check) {
      if (error < state.best_error) {
        state.best_error = error;
        state.best_iter = it;
      } else if (it - state.best_iter > config.n_iter_without_progress) {
        result.reason = StopReason::no_progress;
        return result;
      }
      if (result.grad_norm <= config.min_grad_norm) {
        result.reason = StopReason::small_gradient;
        return result;
      }
    }
    if (last) {
      result.reason = StopReason::max_iter;
      return result;
    }
    if (interrupted()) {
      result.reason = StopReason::interrupted;
      return result;
    }
  }
  return result;
}

/// Runs iterations [first_iter, min(stop_iter, config.max_iter)) of scikit-learn's gradient
/// descent: gains +0.2 where the update and gradient disagree in sign, ×0.8 elsewhere, clipped at
/// min_gain; update = momentum·update − learning_rate·gains·grad. Every n_iter_check iterations
/// (and at the phase's last), the error is computed and the stopping rules applied.
///
/// With Barnes-Hut, the points are first relabelled in the Morton order of the current map (P's
/// rows and columns with them, each row keeping its order), so that the attraction's gathers
/// and the tree's points are close in memory; the labels are restored at the end of the chunk.
/// Relabelling changes no per-row sum, only which memory holds it.
template <class Interrupt>
ChunkResult optimize_chunk(double* y, int dim, const CsrView& p, const Kernel& kernel, OptimizerState& state,
                           const OptimizerConfig& config, index_t first_iter, index_t stop_iter, GradientWorkspace& ws,
                           int n_threads, Interrupt&& interrupted) {
  if (config.exact || dim != 2) {
    return optimize_chunk_in_place(y, dim, p, kernel, state, config, first_iter, stop_iter, ws, n_threads,
                                   interrupted);
  }
  const index_t n = p.n_rows;
  ws.canonical.clear();
  ws.tree.build(y, n);
  const std::vector<std::int32_t> order = ws.tree.order();
  std::vector<std::int64_t> label(n);
  for (index_t s = 0; s < n; ++s) label[order[s]] = s;
  ws.canonical.resize(n);
  for (index_t i = 0; i < n; ++i) ws.canonical[i] = static_cast<std::int32_t>(label[i]);
  std::vector<double> ys(2 * n), upd(2 * n), gains(2 * n);
  std::vector<std::int64_t> indptr(n + 1, 0), indices(p.indptr[n]);
  std::vector<double> data(p.indptr[n]);
  for (index_t s = 0; s < n; ++s) {
    const index_t i = order[s];
    for (int c = 0; c < 2; ++c) {
      ys[2 * s + c] = y[2 * i + c];
      upd[2 * s + c] = state.update[2 * i + c];
      gains[2 * s + c] = state.gains[2 * i + c];
    }
    std::int64_t dst = indptr[s];
    for (std::int64_t e = p.indptr[i]; e < p.indptr[i + 1]; ++e, ++dst) {
      indices[dst] = label[p.indices[e]];
      data[dst] = p.data[e];
    }
    indptr[s + 1] = dst;
  }
  const CsrView relabelled{indptr.data(), indices.data(), data.data(), n};
  OptimizerState sorted_state{upd.data(), gains.data(), state.best_error, state.best_iter};
  ws.prepared_for = nullptr;
  ChunkResult result;
  {
    TaskTeam team(n_threads);
    ws.team = &team;
    try {
      result = optimize_chunk_in_place(ys.data(), 2, relabelled, kernel, sorted_state, config, first_iter, stop_iter,
                                       ws, n_threads, interrupted);
    } catch (...) {
      ws.team = nullptr;
      throw;
    }
    ws.team = nullptr;
  }
  ws.prepared_for = nullptr;
  ws.canonical.clear();
  for (index_t s = 0; s < n; ++s) {
    const index_t i = order[s];
    for (int c = 0; c < 2; ++c) {
      y[2 * i + c] = ys[2 * s + c];
      state.update[2 * i + c] = upd[2 * s + c];
      state.gains[2 * i + c] = gains[2 * s + c];
    }
  }
  state.best_error = sorted_state.best_error;
  state.best_iter = sorted_state.best_iter;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Placing new points into a fixed map.
// ---------------------------------------------------------------------------------------------

/// Moves the m new points y_new (m×dim) to minimise, for each point independently,
/// KL(P_i ‖ Q_i) with Q_i over the fixed reference points (Student-t kernel): attraction to the
/// point's reference neighbours (rows of p, each summing to 1), repulsion from the reference
/// map by Barnes-Hut on its quadtree (dim == 2) or exactly (other dims). Uses the same
/// gains + momentum rule for n_iter iterations. Each new point's path depends on that point alone.
template <class Interrupt>
index_t transform_optimize(double* y_new, index_t m, int dim, const double* y_ref, index_t n_ref, const CsrView& p,
                           const Kernel& kernel, double angle, double learning_rate, double momentum, index_t n_iter,
                           double* update, double* gains, int n_threads, Interrupt&& interrupted) {
  if (dim < 1 || dim > 8) throw std::invalid_argument("transform: dim must be in [1, 8]");
  QuadTree tree;
  if (dim == 2) tree.build(y_ref, n_ref);
  const float inv_angle2 = angle > 0 ? static_cast<float>(1.0 / (angle * angle)) : std::numeric_limits<float>::infinity();
  const double factor = kernel.gradient_factor() / 2.0;
  const double inv_dof = 1.0 / kernel.dof, exponent = kernel.exponent();
  const Tiling rows{m, 16};
  index_t done = 0;
  constexpr index_t chunk = 10;
  for (index_t it0 = 0; it0 < n_iter; it0 += chunk) {
    const index_t it1 = std::min(n_iter, it0 + chunk);
    parallel_for(rows.count(), n_threads, [&](index_t tile) {
      thread_local InteractionList list;
      const Range r = rows[tile];
      double rep[8], att[8];
      for (index_t i = r.begin; i < r.end; ++i) {
        double* yi = y_new + dim * i;
        for (index_t it = it0; it < it1; ++it) {
          double z = 0;
          if (dim == 2) {
            const float px = static_cast<float>(yi[0]), py = static_cast<float>(yi[1]);
            build_interactions(tree, px, px, py, py, 0, 0, inv_angle2, list);
            if (kernel.cauchy()) {
              evaluate_cauchy(list, px, py, z, rep[0], rep[1]);
            } else {
              evaluate_general(list, px, py, kernel, z, rep[0], rep[1]);
            }
          } else {
            for (int c = 0; c < dim; ++c) rep[c] = 0;
            for (index_t j = 0; j < n_ref; ++j) {
              double d2 = 0;
              for (int c = 0; c < dim; ++c) d2 += (yi[c] - y_ref[dim * j + c]) * (yi[c] - y_ref[dim * j + c]);
              const double u = 1.0 / (1.0 + d2 * inv_dof);
              const double w = kernel.cauchy() ? u : std::pow(u, exponent);
              z += w;
              for (int c = 0; c < dim; ++c) rep[c] += w * u * (yi[c] - y_ref[dim * j + c]);
            }
          }
          for (int c = 0; c < dim; ++c) att[c] = 0;
          for (std::int64_t e = p.indptr[i]; e < p.indptr[i + 1]; ++e) {
            const double* yj = y_ref + dim * p.indices[e];
            double d2 = 0;
            for (int c = 0; c < dim; ++c) d2 += (yi[c] - yj[c]) * (yi[c] - yj[c]);
            const double u = 1.0 / (1.0 + d2 * inv_dof);
            for (int c = 0; c < dim; ++c) att[c] += p.data[e] * u * (yi[c] - yj[c]);
          }
          for (int c = 0; c < dim; ++c) {
            const double g = factor * (att[c] - rep[c] / z);
            double& gain = gains[dim * i + c];
            double& upd = update[dim * i + c];
            gain = (upd * g < 0.0) ? gain + 0.2 : gain * 0.8;
            if (gain < 0.01) gain = 0.01;
            upd = momentum * upd - learning_rate * g * gain;
            yi[c] += upd;
          }
        }
      }
    });
    done = it1;
    if (interrupted()) break;
  }
  return done;
}

}  // namespace tsne
}  // namespace leafrbm
