//! `vellum user …` and `vellum key …`: the identity database (`auth.sqlite` in the data folder),
//! edited offline, with or without a running server.

use std::io::BufRead;

use anyhow::{Context as _, Result};
use serde::Serialize;
use vellum_auth::{AuthStore, NewUser};

use crate::cli::{KeyCommand, UserCommand};
use crate::context::Context;
use crate::render::print_json;

fn open(ctx: &Context) -> Result<AuthStore> {
    AuthStore::open(&ctx.data_dir).with_context(|| {
        format!(
            "opening the user database in {} (--data-dir / VELLUM_DATA_DIR)",
            ctx.data_dir.display()
        )
    })
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
    let store = open(ctx)?;
    match command {
        UserCommand::Add {
            name,
            roles,
            groups,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            store.add_user(&NewUser {
                name: &name,
                password: &password,
                roles,
                groups,
            })?;
            report_password(ctx, &name, generated.then_some(password.as_str()), "Added")
        }
        UserCommand::List => {
            let users = store.list_users()?;
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
            store.set_disabled(&name, true)?;
            done(
                ctx,
                &format!("Disabled {name}: sessions ended, keys suspended."),
            )
        }
        UserCommand::Enable { name } => {
            store.set_disabled(&name, false)?;
            done(ctx, &format!("Enabled {name}."))
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            store.set_password(&name, &password)?;
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
    let store = open(ctx)?;
    match command {
        KeyCommand::Create { user, name } => {
            let created = store.create_key(&user, &name)?;
            if ctx.json {
                return print_json(&created);
            }
            println!("Created key {} for {user} ({name}).", created.info.id);
            println!(
                "Key (shown once; store it like a password): {}",
                created.key
            );
            Ok(())
        }
        KeyCommand::List { user } => {
            let keys = store.list_keys(user.as_deref())?;
            if ctx.json {
                return print_json(&keys);
            }
            for key in keys {
                println!(
                    "vk_{}  {:<16} {:<32} {}",
                    key.id,
                    key.user,
                    key.name,
                    if key.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
            Ok(())
        }
        KeyCommand::Revoke { id } => {
            store.revoke_key(&id)?;
            done(ctx, "Revoked.")
        }
    }
}
