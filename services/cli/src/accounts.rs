//! `vellum user …` and `vellum key …`: the identity database (`auth.sqlite` in the data folder),
//! changed through the application layer: Cedar `admin` on `vellum:accounts` for the caller
//! (the operator, or `--as USER`), and a `user.change` / `key.change` / `account.list` record in
//! the audit log. While `vellum serve` runs it holds the audit log: use the API then.

use std::io::BufRead;

use anyhow::{Context as _, Result};
use serde::Serialize;
use vellum_auth::{AuthStore, NewUser};

use crate::cli::{KeyCommand, UserCommand};
use crate::context::{service_error, Context, FrontDoor};
use crate::render::print_json;
use vellum_audit::actions;

/// Runs an account change through the front door.
fn change<T>(
    door: &FrontDoor,
    action: &str,
    target: &str,
    operation: &str,
    apply: impl FnOnce(&AuthStore) -> vellum_auth::Result<T>,
) -> Result<T> {
    door.service
        .change_accounts(&door.caller, action, target, operation, apply)
        .map_err(service_error)
}

/// The password from stdin's first line, or a generated one (returned to print once).
fn password(from_stdin: bool) -> Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        return Ok((password, false));
    }
    Ok((vellum_auth::generate_password()?, true))
}

#[derive(Serialize)]
struct PasswordSet<'a> {
    user: &'a str,
    /// Only when generated: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_password: Option<&'a str>,
}

pub fn user(ctx: &Context, command: UserCommand) -> Result<()> {
    let door = ctx.front_door(false)?;
    let result = user_command(ctx, &door, command);
    door.close()?;
    result
}

fn user_command(ctx: &Context, door: &FrontDoor, command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            name,
            roles,
            groups,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            change(door, actions::USER_CHANGE, &name, "create", |store| {
                store.add_user(&NewUser {
                    name: &name,
                    password: &password,
                    roles,
                    groups,
                })
            })?;
            report_password(ctx, &name, generated.then_some(password.as_str()), "Added")
        }
        UserCommand::List => {
            let users = door
                .service
                .read_accounts(&door.caller, "users", AuthStore::list_users)
                .map_err(service_error)?;
            if ctx.json {
                return print_json(&users);
            }
            for user in users {
                println!(
                    "{:<24} roles: {:<24} groups: {}{}",
                    user.name,
                    user.roles.join(","),
                    user.groups.join(","),
                    if user.disabled { "  (disabled)" } else { "" }
                );
            }
            Ok(())
        }
        UserCommand::Disable { name } => {
            change(door, actions::USER_CHANGE, &name, "disable", |store| {
                store.set_disabled(&name, true)
            })?;
            done(
                ctx,
                &format!("Disabled {name}: sessions ended, keys suspended."),
            )
        }
        UserCommand::Enable { name } => {
            change(door, actions::USER_CHANGE, &name, "enable", |store| {
                store.set_disabled(&name, false)
            })?;
            done(ctx, &format!("Enabled {name}."))
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            // The operator's tool: sessions end and keys are revoked, and the user is not asked
            // to change it again (this is how the first-start admin sets their own).
            change(door, actions::USER_CHANGE, &name, "password", |store| {
                store.set_password(&name, &password)
            })?;
            report_password(
                ctx,
                &name,
                generated.then_some(password.as_str()),
                "Set the password of",
            )
        }
    }
}

fn report_password(ctx: &Context, user: &str, generated: Option<&str>, verb: &str) -> Result<()> {
    if ctx.json {
        return print_json(&PasswordSet {
            user,
            generated_password: generated,
        });
    }
    println!("{verb} {user}.");
    if let Some(password) = generated {
        println!("Password (shown once; pass it on securely): {password}");
    }
    Ok(())
}

fn done(ctx: &Context, message: &str) -> Result<()> {
    if ctx.json {
        print_json(&serde_json::json!({ "ok": true }))
    } else {
        println!("{message}");
        Ok(())
    }
}

pub fn key(ctx: &Context, command: KeyCommand) -> Result<()> {
    let door = ctx.front_door(false)?;
    let result = key_command(ctx, &door, command);
    door.close()?;
    result
}

fn key_command(ctx: &Context, door: &FrontDoor, command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Create { user, name, days } => {
            let days = days.unwrap_or(vellum_auth::DEFAULT_KEY_DAYS);
            let created = change(door, actions::KEY_CHANGE, &user, "create", |store| {
                store.create_key_for_days(&user, &name, days)
            })?;
            if ctx.json {
                return print_json(&created);
            }
            println!(
                "Created key {} for {user} ({name}), valid for {days} days (until {}).",
                created.info.id,
                utc_date(created.info.expires_at)
            );
            println!(
                "Key (shown once; store it like a password): {}",
                created.key
            );
            Ok(())
        }
        KeyCommand::List { user } => {
            let keys = door
                .service
                .read_accounts(&door.caller, "keys", |store| {
                    store.list_keys(user.as_deref())
                })
                .map_err(service_error)?;
            if ctx.json {
                return print_json(&keys);
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            for key in keys {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if key.expires_at <= now {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "vk_{}  {:<16} {:<32} {:<8} expires {}",
                    key.id,
                    key.user,
                    key.name,
                    state,
                    utc_date(key.expires_at)
                );
            }
            Ok(())
        }
        KeyCommand::Revoke { id } => {
            change(door, actions::KEY_CHANGE, &id, "revoke", |store| {
                store.revoke_key(&id)
            })?;
            done(ctx, "Revoked.")
        }
    }
}

/// `YYYY-MM-DD` (UTC) of Unix seconds, for listings (days since the epoch to a civil date,
/// after Howard Hinnant's algorithm: no date crate for one column).
fn utc_date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29");
        assert_eq!(super::utc_date(1_767_225_599), "2025-12-31");
    }
}
