//! `archive user`: the people who sign in to the web UI. Who they are (name, display name,
//! role) is the messenger's directory; how they sign in is the sign-in file
//! ([`crate::accounts`]).

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cli::{Command, UserCommand};
use crate::context::Ctx;
use crate::output::{outln, print_json};

/// Reads the password a `user add` or `user passwd` needs from stdin (without echo on a
/// terminal, asked twice); `None` for every other command.
pub(crate) fn password_input(command: &Command) -> Result<Option<String>> {
    let name = match command {
        Command::User {
            command: UserCommand::Add { name, .. } | UserCommand::Passwd { name },
        } => name,
        Command::Key { command } => return crate::key_commands::passphrase_input(command),
        _ => return Ok(None),
    };
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .take(crate::accounts::MAX_PASSWORD_LEN as u64 + 2)
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
        crate::accounts::check_password(&password)?;
        return Ok(Some(password));
    }
    let first = ask_hidden(&format!("password for {name}: "))?;
    crate::accounts::check_password(&first)?;
    let again = ask_hidden("the same password again: ")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(Some(first))
}

/// Asks on the terminal with echo off.
pub(crate) fn ask_hidden(prompt: &str) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    write!(stderr, "{prompt}")?;
    stderr.flush()?;
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn the terminal's echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    writeln!(stderr)?;
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[derive(Serialize)]
struct PersonRow {
    name: String,
    display_name: String,
    role: String,
    can_sign_in: bool,
}

pub(crate) fn user(ctx: &Ctx, command: UserCommand, json: bool) -> Result<u8> {
    let chat = ctx.chat()?;
    let accounts = ctx.accounts()?;
    match command {
        UserCommand::Add {
            name,
            admin,
            display_name,
        } => {
            let password = ctx
                .input
                .clone()
                .context("no password was read (give it on stdin)")?;
            let people = chat.accounts()?;
            let display = display_name.unwrap_or_else(|| name.clone());
            // The command line acts as the server's operator: the first account needs no
            // one; later ones are made by an existing admin.
            let by = people
                .iter()
                .find(|a| a.profile.role == chat::ServerRole::Admin)
                .map(|a| a.name.clone());
            if chat.account(&name)?.is_some() {
                bail!("{name} exists already; `archive user passwd {name}` sets its password");
            }
            chat.create_account(by.as_deref(), &name, &display)?;
            if admin && by.is_some() {
                chat.set_server_role(
                    by.as_deref().unwrap_or_default(),
                    &name,
                    chat::ServerRole::Admin,
                )?;
            }
            accounts.set_password(&name, &password)?;
            let role = chat
                .account(&name)?
                .map(|a| role_name(a.profile.role))
                .unwrap_or_default();
            if json {
                print_json(&serde_json::json!({ "name": name, "role": role }))?;
            } else {
                outln!("added {name} ({role}); they can sign in now");
                if by.is_none() && !admin {
                    outln!("(the first person of a server is always its admin)");
                }
            }
            Ok(0)
        }
        UserCommand::Ls => {
            let mut rows = Vec::new();
            for a in chat.accounts()? {
                rows.push(PersonRow {
                    can_sign_in: accounts.has_password(&a.name)?,
                    role: role_name(a.profile.role),
                    display_name: a.profile.display_name,
                    name: a.name,
                });
            }
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                outln!("no one yet: `archive user add NAME --admin` adds the first admin");
            } else {
                for r in rows {
                    let note = if r.can_sign_in { "" } else { "  (no password)" };
                    outln!("{:<20} {:<10} {}{note}", r.name, r.role, r.display_name);
                }
            }
            Ok(0)
        }
        UserCommand::Passwd { name } => {
            let password = ctx
                .input
                .clone()
                .context("no password was read (give it on stdin)")?;
            if chat.account(&name)?.is_none() {
                bail!("there is no person {name} on this server (`archive user ls`)");
            }
            accounts.set_password(&name, &password)?;
            outln!("password of {name} set; their sessions ended");
            Ok(0)
        }
        UserCommand::Rm { name } => {
            let Some(by) = chat
                .accounts()?
                .into_iter()
                .find(|a| a.profile.role == chat::ServerRole::Admin && a.name != name)
            else {
                bail!("{name} is the only admin (or no admin exists): add another admin first");
            };
            chat.remove_account(&by.name, &name)?;
            accounts.remove(&name)?;
            outln!("removed {name}: they cannot sign in; what they wrote stays");
            Ok(0)
        }
    }
}

fn role_name(role: chat::ServerRole) -> String {
    format!("{role:?}").to_lowercase()
}
