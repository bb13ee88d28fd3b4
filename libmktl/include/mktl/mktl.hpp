// Everything of mktl's public API.
#pragma once
#include <mktl/bulk.hpp>
#include <mktl/catalog.hpp>
#include <mktl/client.hpp>
#include <mktl/collection.hpp>
#include <mktl/daemon.hpp>
#include <mktl/error.hpp>
#include <mktl/expr.hpp>
#include <mktl/format.hpp>
#include <mktl/future.hpp>
#include <mktl/item.hpp>
#include <mktl/json.hpp>
#include <mktl/log.hpp>
#include <mktl/reading.hpp>
