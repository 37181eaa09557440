#pragma once

#include <idemq/app.hpp>
#include <idemq/batch_handler.hpp>
#include <idemq/context.hpp>
#include <idemq/errors.hpp>
#include <idemq/handler.hpp>
#include <idemq/logger.hpp>
#include <idemq/message.hpp>
#include <idemq/migration.hpp>
#include <idemq/options.hpp>
#include <idemq/outbox.hpp>
#include <idemq/route.hpp>
#include <idemq/statements.hpp>
#include <idemq/stats.hpp>
#include <idemq/worker.hpp>
