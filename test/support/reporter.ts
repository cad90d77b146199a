/**
 * Mocha reporter for this project: mocha's own Spec output, then one final machine-readable line
 *
 *     N passed, N failed[, N skipped]
 *
 * taken from mocha's own run statistics (`runner.stats`). "failed" counts everything mocha counts
 * as a failure (failing tests and failing hooks); ", N skipped" appears only when tests were pending
 * (it.skip, this.skip(), tests without a body).
 *
 * Named in .mocharc.json as dist/test/support/reporter.js. Mocha loads reporters with require(),
 * so this module is CommonJS and exports the class itself.
 */
import Mocha = require('mocha');

const { EVENT_RUN_END } = Mocha.Runner.constants;

class TickReporter extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    // Registered after Spec's own end listener, so this line comes after Spec's epilogue.
    runner.once(EVENT_RUN_END, () => {
      const stats = runner.stats ?? this.stats;
      const passed = stats?.passes ?? 0;
      const failed = stats?.failures ?? 0;
      const skipped = stats?.pending ?? 0;
      let line = `${passed} passed, ${failed} failed`;
      if (skipped > 0) line += `, ${skipped} skipped`;
      // Base.consoleLog is mocha's saved console.log, immune to tests that stub console.log.
      const log = Mocha.reporters.Base.consoleLog ?? console.log;
      log(line);
    });
  }
}

export = TickReporter;
