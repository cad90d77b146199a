import { connect, type ServerConfig, type SftpSession } from "./connect";

/**
 * One live connection shared by a run's transfers. When it drops, the next caller reconnects (once,
 * for everybody waiting), so that a cut connection costs a reconnect and a resume, not the run.
 */
export class SessionPool {
  /** the connection being made or in use, and (once made) the session it gave */
  private current: Promise<SftpSession> | undefined;
  private session: SftpSession | undefined;

  constructor(private readonly server: ServerConfig, private readonly signal?: AbortSignal) {}

  get(): Promise<SftpSession> {
    if (this.session && !this.session.isOpen()) this.forget();
    if (!this.current) {
      const attempt = connect(this.server, { signal: this.signal });
      this.current = attempt;
      attempt.then(
        (s) => {
          if (this.current === attempt) this.session = s;
        },
        () => {
          if (this.current === attempt) this.forget();
        },
      );
    }
    return this.current;
  }

  /** Drops a session that misbehaved (stall, protocol error) so the next get() reconnects. */
  discard(session: SftpSession): void {
    session.destroy();
    if (this.session === session) this.forget();
  }

  private forget(): void {
    this.current = undefined;
    this.session = undefined;
  }

  async close(): Promise<void> {
    const current = this.current;
    this.forget();
    if (current) await current.then((s) => s.end(), () => undefined);
  }
}
