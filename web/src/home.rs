//! Home: the wallet's money (one balance model), the factory's status and remaining life, and
//! its picture. Once the wallet has left its factory, nothing that needs the channel is offered.
//! A factory in its dying period gets the banner that moves the wallet to a new one; factories
//! the wallet moved out of are not shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bitcoin::absolute::Height;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wallet::account::{Account, FactoryOverview, FactoryPhase};
use wallet::picture::{path_picture, PictureNode};
use wallet::session::{ChainSource, Coins, EsploraChain, StoredPath};

use crate::amount::Sats;
use crate::exit_card::ExitCard;
use crate::factory_tree::FactoryTree;
use crate::faucet_card::FaucetCard;
use crate::liquidity_card::LiquidityCard;
use crate::money_card::MoneyCard;
use crate::moving::{Ending, MoveCard};
use crate::send_onchain::{short_address, swap_step};
use crate::state::{AppCtx, Screen};

const REFRESH_MS: u32 = 2_000;

/// What the home screen last read.
#[derive(Debug, Clone, Default)]
struct HomeData {
    overview: Option<FactoryOverview>,
    /// The path shown, when its funding confirmed (what an exit would use).
    funded: Option<StoredPath>,
    picture: Vec<PictureNode>,
    tip: Option<u32>,
    /// The coins at the wallet's own address.
    onchain: Option<Coins>,
    /// The factory's payout to this wallet, or this wallet's leaf, is on chain: it left.
    left: bool,
    /// The wallet's factory in its dying period, if any (the one shown, or an older one whose
    /// move is not finished).
    ending: Option<Ending>,
    error: Option<String>,
    loaded: bool,
}

/// The home screen.
#[component]
pub fn Home() -> impl IntoView {
    let ctx = AppCtx::get();
    let data = RwSignal::new(HomeData::default());
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    on_cleanup(move || flag.store(false, Ordering::Relaxed));
    if ctx.account().is_some() {
        spawn_local(async move {
            while alive.load(Ordering::Relaxed) {
                // Held only while reading, so settings can wipe the wallet.
                let Some(account) = ctx.account() else { return };
                let next = read(&account, ctx.esplora_url()).await;
                drop(account);
                let left = next.left;
                if data.try_set(next).is_some() {
                    return;
                }
                // Left: on chain, or an exit started in this tab (before anything confirmed).
                let left = left || ctx.exit.with_untracked(|e| e.running || e.status.is_some());
                if left != ctx.left.get_untracked() {
                    ctx.left.set(left);
                }
                gloo_timers::future::TimeoutFuture::new(REFRESH_MS).await;
            }
        });
    }
    let sweep = ctx
        .account()
        .and_then(|a| a.sweep_address().ok())
        .map(|a| a.to_string())
        .unwrap_or_default();
    // Redrawn only when they change, not at every refresh.
    let funded = Memo::new(move |_| data.with(|d| d.funded.clone()));
    let picture = Memo::new(move |_| data.with(|d| d.picture.clone()));
    // What liquidity purchases moved from the leaf's stock into the channel: the channel's
    // capacity now, less the leaf's channel output at state 0.
    let sold = move |d: &HomeData| {
        let (Some(funded), Some(o)) = (&d.funded, &d.overview) else {
            return bitcoin::Amount::ZERO;
        };
        ctx.pay.with(|p| {
            p.snapshot
                .as_ref()
                .and_then(|s| {
                    s.channels
                        .iter()
                        .find(|c| c.channel.factory == funded.factory)
                        .and_then(|c| c.capacity.checked_sub(o.channel))
                })
                .unwrap_or(bitcoin::Amount::ZERO)
        })
    };
    let joining = move || ctx.join.with(|j| j.running);
    let last_join = move || {
        ctx.profile.with(|p| {
            p.as_ref()
                .and_then(|p| p.last_join().and_then(|j| j.ended.clone()))
        })
    };
    let channel_size =
        Signal::derive(move || data.with(|d| d.overview.as_ref().map(|o| o.channel + sold(d))));
    // What the payment client says is for sale (the leaf's stock less what must stay in it, the
    // figure the liquidity card sells from); before it runs, the factory's stock less what
    // was sold.
    let for_sale = Signal::derive(move || {
        let live = ctx.pay.with(|p| {
            p.snapshot.as_ref().and_then(|s| {
                let open = s.channels.iter().filter(|c| c.closed.is_none());
                open.clone().next().map(|_| open.map(|c| c.for_sale).sum())
            })
        });
        live.or_else(|| {
            data.with(|d| {
                d.overview.as_ref().map(|o| {
                    o.inbound
                        .checked_sub(sold(d))
                        .unwrap_or(bitcoin::Amount::ZERO)
                })
            })
        })
    });
    let onchain = Signal::derive(move || data.with(|d| d.onchain));
    let left = move || ctx.left.get();
    // The dying factory, unless the wallet left the factory shown.
    let ending = Memo::new(move |_| {
        let left = ctx.left.get();
        data.with(|d| {
            d.ending.clone().filter(|e| {
                !(left
                    && d.funded
                        .as_ref()
                        .is_some_and(|f| f.factory == e.stored.factory))
            })
        })
    });
    let chain_source = move || {
        ctx.profile
            .with(|p| ctx.chain_source_of(p.as_ref()))
            .unwrap_or_default()
    };
    view! {
        <MoveCard ending />
        <SwapsUnderWay />
        <MoneyCard for_sale channel_size onchain sweep />
        <Show when=move || !left()>
            <FaucetCard />
            <LiquidityCard />
        </Show>
        <section class="card" id="factory" aria-labelledby="factory-title">
            <h2 id="factory-title">"Factory"</h2>
            {move || data.with(|d| match d.overview.clone() {
                Some(o) => { let (phase, to_dying, dying_at) = (o.phase, o.blocks_to_dying, o.dying_at); view! {
                    <p>"Status: "<strong id="factory-status" data-phase=move || if left() { "left" } else { phase_id(phase) }>
                        {move || if left() { "you left this factory" } else { phase.describe() }}</strong></p>
                    <dl>
                        <dt>"Members"</dt><dd id="factory-clients">{o.clients}</dd>
                        <Show when=move || !left()>
                            <dt>"Move to a new factory"</dt>
                            <dd id="dying-in">{move || if to_dying.to_blocks() == 0 {
                                format!("now (since block {dying_at})")
                            } else {
                                format!("in {} blocks ({}), at block {dying_at}", to_dying.to_blocks(), ctx.pace.get().approx(to_dying))
                            }}</dd>
                        </Show>
                        <dt>"Latest block"</dt><dd id="home-tip">{d.tip}</dd>
                    </dl>
                    <details>
                        <summary>"Details"</summary>
                        <dl>
                            <dt>"Funding transaction"</dt><dd class="mono" id="funding-txid">{o.funding.to_string()}</dd>
                            <dt>"Time per block"</dt><dd id="block-pace">{move || format!("about {} seconds", ctx.pace.get().secs_per_block())}</dd>
                        </dl>
                    </details>
                }.into_any() }
                None => view! {
                    <p id="factory-status" data-phase="none">{if d.loaded { "You are not in a factory yet." } else { "Reading…" }}</p>
                    <p class="hint" id="last-join">{last_join}</p>
                    <Show when=move || !joining()>
                        <button class="primary" id="start-join" on:click=move |_| ctx.screen.set(Screen::Join)>"Join a factory"</button>
                    </Show>
                }.into_any(),
            })}
            <Show when=joining>
                <button id="see-join" on:click=move |_| ctx.screen.set(Screen::Join)>"A join is under way: see it"</button>
            </Show>
            {move || {
                let nodes = wallet::picture::with_leaf_for_sale(picture.get(), for_sale.get());
                (!nodes.is_empty()).then(|| view! { <FactoryTree nodes /> })
            }}
            <p class="bad" role="alert">{move || data.with(|d| d.error.clone())}</p>
            <p class="hint">"Chain read from "<span id="home-chain-source">{chain_source}</span></p>
            <Show when=move || ctx.is_providers_chain(&chain_source())>
                <p class="bad" id="home-chain-warning">{crate::chain_card::PROVIDERS_CHAIN}</p>
            </Show>
        </section>
        {move || funded.get().map(|stored| view! { <ExitCard stored /> })}
    }
}

/// Payments to an address under way (started on Send, in this tab or before a reload): what is
/// sent, where to, and where each stands, in Send's words.
#[component]
fn SwapsUnderWay() -> impl IntoView {
    let ctx = AppCtx::get();
    let under_way = Memo::new(move |_| {
        ctx.pay.with(|p| {
            p.snapshot
                .as_ref()
                .map(|s| {
                    s.payments
                        .iter()
                        .filter(|r| {
                            r.direction == wallet::pay::Direction::Sent
                                && r.status == wallet::pay::PaymentStatus::Pending
                        })
                        .filter_map(|r| {
                            let swap = r.swap.as_deref()?;
                            Some((r.amount, swap.address.clone(), swap_step(Some(swap))))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    });
    view! {
        <Show when=move || under_way.with(|u| !u.is_empty())>
            <section class="card" id="swap-under-way" aria-labelledby="swap-under-way-title">
                <h2 id="swap-under-way-title">"Under way"</h2>
                {move || under_way.get().into_iter().map(|(amount, address, (step, words, txid))| view! {
                    <div class="swap-payment" data-step=step data-sats=amount.to_sat().to_string()
                        data-address=address.clone() data-txid=txid>
                        <p>"Sending "<Sats amount what="sending" />" to "
                            <span class="mono">{short_address(&address)}</span>"…"</p>
                        <p class="ok">{words}</p>
                    </div>
                }).collect_view()}
                <p class="hint">"A payment to an address takes a block or two. History shows it too."</p>
            </section>
        </Show>
    }
}

/// The newest of `paths`' factories in its dying period at `tip` whose funding confirmed;
/// with `shown` (the funded factory Home shows) as its move's target when that one is newer.
async fn ending(
    chain: &EsploraChain,
    paths: &[StoredPath],
    tip: Height,
    shown: Option<shared::types::FactoryId>,
) -> Option<Ending> {
    let mut seen = std::collections::BTreeSet::new();
    // Newest first; a factory's newest session first.
    for p in paths.iter().rev() {
        if !seen.insert(p.factory) {
            continue;
        }
        let overview = FactoryOverview::new(&p.path, tip, true);
        if overview.phase != FactoryPhase::Dying {
            continue;
        }
        let funding = p.path.funding_outpoint().txid;
        if !matches!(chain.confirmations(&funding).await, Ok(n) if n > 0) {
            continue;
        }
        return Some(Ending {
            stored: p.clone(),
            overview,
            target: shown.filter(|s| *s > p.factory),
        });
    }
    None
}

fn phase_id(phase: FactoryPhase) -> &'static str {
    match phase {
        FactoryPhase::Funding => "funding",
        FactoryPhase::Active => "live",
        FactoryPhase::Dying => "dying",
        FactoryPhase::Expired => "expired",
    }
}

/// Reads the stored paths and the chain: the newest factory whose funding confirmed, else the
/// newest stored one; factories the wallet moved out of are skipped.
async fn read(account: &Account, esplora: Option<String>) -> HomeData {
    let mut data = HomeData {
        loaded: true,
        ..HomeData::default()
    };
    let moved = account.profile().moved();
    let paths: Vec<StoredPath> = match account.paths().await {
        Ok(p) => p
            .into_iter()
            .filter(|p| !moved.contains(&p.factory))
            .collect(),
        Err(e) => {
            data.error = Some(e.to_string());
            return data;
        }
    };
    let watch = account.tip_watch();
    let chain = esplora
        .as_deref()
        .and_then(|u| EsploraChain::with_watch(u, watch.clone()).ok());
    // Coins at the wallet's own address count with or without a factory.
    if let (Some(chain), Ok(address)) = (&chain, account.sweep_address()) {
        match chain.coins_at(&address).await {
            Ok(coins) => data.onchain = Some(coins),
            Err(e) => data.error = Some(e.to_string()),
        }
    }
    let Some(newest) = paths.last().cloned() else {
        return data;
    };
    let mut chosen: (StoredPath, bool) = (newest, false);
    if let Some(chain) = &chain {
        match chain.tip_height().await {
            Ok(tip) => data.tip = Some(tip),
            Err(e) => data.error = Some(e.to_string()),
        }
        for p in paths.iter().rev() {
            let txid = p.path.funding_outpoint().txid;
            match chain.confirmations(&txid).await {
                Ok(n) if n > 0 => {
                    chosen = (p.clone(), true);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    data.error = Some(e.to_string());
                    break;
                }
            }
        }
    }
    let (stored, funded) = chosen;
    // A leaf state of this wallet's (the tree's own leaf, or a newer one after a purchase) in
    // the mempool or a block, and whether it is confirmed.
    let mut leaf_state = None;
    if let Some(chain) = &chain {
        // Left: the factory's payout to this wallet, or its leaf, is on chain.
        if funded {
            let payout = stored.path.distribution().txid();
            leaf_state = chain
                .spender(stored.path.leaf().spent_outpoint())
                .await
                .ok()
                .flatten();
            data.left =
                leaf_state.is_some() || matches!(chain.transaction(&payout).await, Ok(Some(_)));
        }
    }
    data.funded = funded.then(|| stored.clone());
    let tip = data
        .tip
        .and_then(|t| Height::from_consensus(t).ok())
        .unwrap_or(stored.path.proposal().creation_height);
    data.overview = Some(FactoryOverview::new(&stored.path, tip, funded));
    if let (Some(chain), Some(_)) = (&chain, data.tip) {
        data.ending = ending(chain, &paths, tip, funded.then_some(stored.factory)).await;
    }
    // What of the path is on chain, for every member (whoever published it): the payout to
    // everyone, or the tree, where each transaction spends the one above it, so the first one
    // not confirmed ends the reads.
    let mut on_chain = std::collections::BTreeSet::new();
    if funded {
        on_chain.insert(stored.path.funding_outpoint().txid);
        if let Some(chain) = &chain {
            let payout = stored.path.distribution().txid();
            let paid_out = matches!(chain.confirmations(&payout).await, Ok(n) if n > 0);
            if paid_out {
                on_chain.insert(payout);
            }
            let tree = stored.path.nodes().iter().map(|n| n.txid());
            for txid in tree.take_while(|_| !paid_out) {
                match chain.confirmations(&txid).await {
                    Ok(n) if n > 0 => on_chain.insert(txid),
                    _ => break,
                };
            }
        }
    }
    let leaf_confirmed = leaf_state
        .filter(|(_, confirmed)| *confirmed)
        .map(|(txid, _)| txid);
    data.picture = wallet::picture::with_leaf_on_chain(
        path_picture(&stored.path, |t| on_chain.contains(t)),
        leaf_confirmed,
    );
    data
}
