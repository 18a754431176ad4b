//! `tcpchurn record --live`: the verdict as it forms. On a terminal, a full screen on a
//! thread of its own (keys: `q` stops the recording, `s` and `c n t r f` sort, `p`
//! pauses the screen); when the recording has stopped, the screen closes and the
//! verdict of the whole trace is printed. Without a terminal, a text block per
//! refresh on stdout.

use std::{
    io::{self, IsTerminal as _, Stdout, Write as _},
    sync::{
        Arc,
        mpsc::{self, Receiver, SyncSender, TryRecvError},
    },
    thread::JoinHandle,
    time::Duration,
};

use crossterm::{
    cursor::{Hide, Show},
    event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};
use tokio::sync::Notify;

use crate::{
    kernel::capabilities::{self, CapSet},
    record::observer::View,
    render::{
        live::{Live, SortKey, ViewState, plain::write_plain, screen},
        style::{ColorChoice, Style},
    },
};

/// How often the screen looks at the keyboard.
const KEY_POLL: Duration = Duration::from_millis(100);

/// The live view for stdout, and the thread of its screen (on a terminal).
pub struct LiveView {
    pub view: Box<dyn View>,
    pub screen: Option<JoinHandle<()>>,
}

/// The screen on a terminal, text blocks otherwise. `stop` stops the recording.
pub fn view(stop: Arc<Notify>) -> io::Result<LiveView> {
    if !io::stdout().is_terminal() {
        return Ok(LiveView {
            view: Box::new(TextBlocks { failed: false }),
            screen: None,
        });
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("tcpchurn-screen".into())
        .spawn(move || {
            // A terminal and a channel: no capability at all.
            let _dropped = capabilities::keep_only(CapSet::EMPTY);
            if let Err(err) = run_screen(&rx, &stop) {
                let _written = writeln!(io::stderr(), "tcpchurn: the live screen failed: {err}");
            }
        })?;
    Ok(LiveView {
        view: Box::new(ToScreen { tx }),
        screen: Some(handle),
    })
}

/// Text blocks on stdout (not a terminal).
struct TextBlocks {
    failed: bool,
}

impl View for TextBlocks {
    fn show(&mut self, live: &Arc<Live>) {
        if self.failed {
            return;
        }
        // A reader that went away (`| head`) ends the blocks, not the recording.
        self.failed = write_plain(&mut io::stdout().lock(), live, Style::default()).is_err();
    }
}

/// Hands verdicts to the screen's thread.
struct ToScreen {
    tx: SyncSender<Arc<Live>>,
}

impl View for ToScreen {
    fn show(&mut self, live: &Arc<Live>) {
        if live.status.recording {
            // A screen still busy with the previous one gets the next.
            let _dropped = self.tx.try_send(Arc::clone(live));
        } else {
            let _gone = self.tx.send(Arc::clone(live));
        }
    }
}

/// The terminal in raw mode on the alternate screen, restored when dropped (also when
/// the thread panics).
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> io::Result<Self> {
        enable_raw_mode()?;
        let mut stdout = io::stdout();
        let entered = execute!(stdout, EnterAlternateScreen, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout)));
        match entered {
            Ok(terminal) => Ok(Self { terminal }),
            Err(err) => {
                restore_terminal();
                Err(err)
            }
        }
    }

    fn draw(&mut self, live: &Live, view: ViewState) -> io::Result<()> {
        self.terminal
            .draw(|frame| screen::draw(frame, live, view))
            .map(drop)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _restored = disable_raw_mode();
    let _left = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Nothing,
    Redraw,
    Stop,
    /// A second Ctrl-C: exit at once, as a second signal does.
    Exit,
}

fn on_key(key: KeyEvent, view: &mut ViewState) -> Action {
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl_c {
        return if view.stopping {
            Action::Exit
        } else {
            Action::Stop
        };
    }
    match key.code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Action::Stop,
        KeyCode::Char('p' | 'P' | ' ') => {
            view.paused = !view.paused;
            Action::Redraw
        }
        KeyCode::Char('s' | 'S') => {
            view.sort = view.sort.next();
            Action::Redraw
        }
        KeyCode::Char(c) => SortKey::of_key(c).map_or(Action::Nothing, |sort| {
            view.sort = sort;
            Action::Redraw
        }),
        _ => Action::Nothing,
    }
}

/// Runs the screen until the recording's last verdict arrives, then prints it.
fn run_screen(rx: &Receiver<Arc<Live>>, stop: &Notify) -> io::Result<()> {
    // The screen opens with the first verdict, once the recorder has started.
    let Ok(mut latest) = rx.recv() else {
        return Ok(());
    };
    let last = if latest.status.recording {
        let mut screen = Screen::enter()?;
        let last = watch(&mut screen, rx, stop, &mut latest)?;
        drop(screen);
        last
    } else {
        Some(latest)
    };
    if let Some(last) = last {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let style = Style::new(ColorChoice::Auto, true, no_color);
        write_plain(&mut io::stdout().lock(), &last, style)?;
    }
    Ok(())
}

/// Draws and reads keys until the last verdict (`None`: the recording ended without
/// one).
fn watch(
    screen: &mut Screen,
    rx: &Receiver<Arc<Live>>,
    stop: &Notify,
    latest: &mut Arc<Live>,
) -> io::Result<Option<Arc<Live>>> {
    let mut view = ViewState::default();
    // New data is drawn unless paused; what a key changed is drawn at once.
    let (mut fresh, mut changed) = (true, false);
    loop {
        if changed || (fresh && !view.paused) {
            screen.draw(latest, view)?;
            (fresh, changed) = (false, false);
        }
        if event::poll(KEY_POLL)? {
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    match on_key(key, &mut view) {
                        Action::Nothing => {}
                        Action::Redraw => changed = true,
                        Action::Stop => {
                            stop.notify_one();
                            view.stopping = true;
                            changed = true;
                        }
                        Action::Exit => {
                            restore_terminal();
                            let _written = writeln!(
                                io::stderr(),
                                "tcpchurn: second Ctrl-C, exiting now; the trace is cut at its \
                                 last block"
                            );
                            std::process::exit(130);
                        }
                    }
                }
                Event::Resize(..) => changed = true,
                _ => {}
            }
        }
        loop {
            match rx.try_recv() {
                Ok(live) if !live.status.recording => return Ok(Some(live)),
                Ok(live) => {
                    *latest = live;
                    fresh = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn keys_stop_pause_and_sort() {
        let mut view = ViewState::default();
        let none = KeyModifiers::NONE;
        assert_eq!(
            on_key(key(KeyCode::Char('p'), none), &mut view),
            Action::Redraw
        );
        assert!(view.paused);
        assert_eq!(
            on_key(key(KeyCode::Char('s'), none), &mut view),
            Action::Redraw
        );
        assert_eq!(view.sort, SortKey::Connections);
        assert_eq!(
            on_key(key(KeyCode::Char('t'), none), &mut view),
            Action::Redraw
        );
        assert_eq!(view.sort, SortKey::TimeWait);
        assert_eq!(
            on_key(key(KeyCode::Char('x'), none), &mut view),
            Action::Nothing
        );
        assert_eq!(
            on_key(key(KeyCode::Char('q'), none), &mut view),
            Action::Stop
        );
        let ctrl_c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(on_key(ctrl_c, &mut view), Action::Stop);
        view.stopping = true;
        assert_eq!(on_key(ctrl_c, &mut view), Action::Exit);
        assert_eq!(
            on_key(key(KeyCode::Char('q'), none), &mut view),
            Action::Stop
        );
    }
}
