#pragma once

#include <idemq/migration.hpp>

#include <vector>

#include "charge_handler.hpp"

namespace test {

// idemq's migrations followed by the payments example's, as `payments-worker migrate` applies them.
inline std::vector<idemq::Migration> payments_schema() {
    auto all = idemq::framework_migrations();
    for (auto& m : payments::migrations()) all.push_back(std::move(m));
    return all;
}

}  // namespace test
