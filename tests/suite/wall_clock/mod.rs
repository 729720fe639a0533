//! Tests of code that takes the date and time of day from the system clock: the exporter, its demo
//! and the backfill as real processes. scripts/faketime-tests.sh runs every test under this module (and
//! only those) again at 23:59:52 in Bogota on 2026-11-30 and 2026-12-31; each must assert what is
//! true at any time, whatever day it is.

mod backfill;
mod demo;
mod restarts;
