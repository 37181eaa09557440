// Links idemq::testing from the installed package: the hostile suite's case names.
#include <idemq/testing.hpp>

#include <iostream>

int main() {
    for (const auto& name : idemq::testing::hostile_case_names()) std::cout << name << '\n';
}
