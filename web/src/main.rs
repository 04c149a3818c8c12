//! The browser app's entry point. One component per file; wallet logic lives in `wallet`.

mod amount;
mod app;
mod chain_card;
mod clipboard;
mod download;
mod exit_card;
mod factory_tree;
mod faucet_card;
mod history;
mod home;
mod join;
mod join_progress;
mod leave_confirm;
mod liquidity_card;
mod lsp_screen;
mod money_card;
mod moving;
mod nav;
mod notify;
mod onchain_send;
mod payments;
mod protect;
mod protection_card;
mod qr;
mod receive;
mod restore;
mod seed_check;
mod seed_show;
mod send;
mod send_onchain;
mod settings;
mod state;
mod terms_card;
mod toast;
mod unlock;
mod welcome;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
